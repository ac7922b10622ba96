"""The build tools outside TensorFlow: Android SDK/NDK, Bazel, adb, and what the machine has."""
