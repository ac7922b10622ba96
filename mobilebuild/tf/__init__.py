"""A TensorFlow source tree: where it comes from, its WORKSPACE, its makefile deps, and the edits we make to it."""
