"""mobilebuild: a TensorFlow image model to a running mobile demo app in one command."""

__version__ = "0.1.0"
