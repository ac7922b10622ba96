"""Where mobilebuild keeps things: cache, data prefix, logs; and the files shipped in the package."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import platformdirs

PACKAGE_DIR = Path(__file__).resolve().parent
# templates/, toolchains/ and WORKSPACE.tmpl sit at the repository root, as the project is
# specified. A built wheel installs them inside the package (pyproject's package-dir mapping and
# setup.py's build step); a source checkout or an editable install reads them from the root.
_SOURCE_ROOT = PACKAGE_DIR.parent


def _shipped(name: str) -> Path:
    inside = PACKAGE_DIR / name
    return inside if inside.exists() else _SOURCE_ROOT / name


TEMPLATES_DIR = _shipped("templates")
TOOLCHAINS_DIR = _shipped("toolchains")
# The wheel puts WORKSPACE.tmpl beside the other templates; a checkout keeps it at the root.
WORKSPACE_TEMPLATE_DIRS = (TEMPLATES_DIR, _SOURCE_ROOT)
DATA_DIR = PACKAGE_DIR / "data"


APP_NAME = "mobilebuild"


def cache_dir() -> Path:
    """``MOBILEBUILD_CACHE``, else the platform's user cache dir (platformdirs: XDG_CACHE_HOME,
    ~/Library/Caches, %LOCALAPPDATA%)."""
    env = os.environ.get("MOBILEBUILD_CACHE")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_cache_path(APP_NAME, appauthor=False)


def data_dir() -> Path:
    """``MOBILEBUILD_HOME``, else the user data dir: the managed prefix for installed toolchains."""
    env = os.environ.get("MOBILEBUILD_HOME")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_data_path(APP_NAME, appauthor=False)


def user_config_file() -> Path:
    """The user's own settings for every project (mirrors, remote cache): ``MOBILEBUILD_USER_CONFIG``,
    else ``config.toml`` in the platform's user config dir (~/.config/mobilebuild on Linux)."""
    env = os.environ.get("MOBILEBUILD_USER_CONFIG")
    if env:
        return Path(env).expanduser()
    return platformdirs.user_config_path(APP_NAME, appauthor=False) / "config.toml"


def log_dir() -> Path:
    d = cache_dir() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def new_log_path(kind: str, suffix: str = ".log") -> Path:
    """A fresh log file name in ``log_dir()``: ``KIND-YYYYmmdd-HHMMSS-PID.log`` (the pid keeps two
    runs started in the same second apart; the time sorts them)."""

    return log_dir() / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}{suffix}"
