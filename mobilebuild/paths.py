"""Where mobilebuild keeps things: cache, data prefix, logs; and the files shipped in the package."""

from __future__ import annotations

import os
import sys
from pathlib import Path

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


def cache_dir() -> Path:
    """``MOBILEBUILD_CACHE``, else the platform's user cache dir (XDG, macOS, Windows)."""
    env = os.environ.get("MOBILEBUILD_CACHE")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    elif os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "mobilebuild"


def data_dir() -> Path:
    """``MOBILEBUILD_HOME``, else the user data dir: the managed prefix for installed toolchains."""
    env = os.environ.get("MOBILEBUILD_HOME")
    if env:
        return Path(env).expanduser()
    if sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    elif os.name == "nt":
        base = Path(os.environ.get("APPDATA", Path.home() / "AppData" / "Roaming"))
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "mobilebuild"


def log_dir() -> Path:
    d = cache_dir() / "logs"
    d.mkdir(parents=True, exist_ok=True)
    return d


def new_log_path(kind: str, suffix: str = ".log") -> Path:
    """A fresh log file name in ``log_dir()``: ``KIND-YYYYmmdd-HHMMSS-PID.log`` (the pid keeps two
    runs started in the same second apart; the time sorts them)."""
    from datetime import datetime

    return log_dir() / f"{kind}-{datetime.now():%Y%m%d-%H%M%S}-{os.getpid()}{suffix}"
