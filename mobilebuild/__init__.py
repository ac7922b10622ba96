"""mobilebuild: a TensorFlow image model to a running mobile demo app in one command."""


def __getattr__(name: str):
    # ``__version__`` is read from the installed metadata (pyproject.toml is the one place it is
    # written) only when asked for: importlib.metadata costs start-up time every command pays.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            value = version("mobilebuild")
        except PackageNotFoundError:  # a source tree used without installing it (PYTHONPATH)
            value = "0+unknown"
        globals()["__version__"] = value
        return value
    raise AttributeError(f"module 'mobilebuild' has no attribute {name!r}")
