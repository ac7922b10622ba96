"""mobilebuild: a TensorFlow image model to a running mobile demo app in one command."""

from importlib.metadata import PackageNotFoundError, version as _distribution_version

# pyproject.toml is the one place the version is written; the installed metadata carries it.
try:
    __version__ = _distribution_version("mobilebuild")
except PackageNotFoundError:  # a source tree used without installing it (PYTHONPATH)
    __version__ = "0+unknown"
