"""The project file ``mobilebuild.toml``: tool paths, mirrors and remote-build settings; and the
user config (``~/.config/mobilebuild/config.toml`` on Linux) for mirrors and the remote cache
shared by every project.

Found from the current directory upward (as git finds ``.git``), or named by
``MOBILEBUILD_CONFIG``, read once per command and passed down. ``setup`` writes it; the tree
resolver (``tf.tree``), the SDK/NDK and Bazel searches and the downloader read it, so a user
types the SDK path once. The file is rendered from a template (one commented line per key)
and written atomically, and only when its content changes.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Mapping

import tomlkit
import tomlkit.items

from mobilebuild.errors import UserError
from mobilebuild.paths import user_config_file

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mobilebuild.fsutil import write_if_changed
from mobilebuild.templating import render

FILENAME = "mobilebuild.toml"
ENV_VAR = "MOBILEBUILD_CONFIG"

# key -> (type, comment). Order is the order in the written file.
KNOWN_KEYS: dict[str, tuple[type | tuple[type, ...], str]] = {
    "tf_src": (str, "TensorFlow source tree the app commands patch and build"),
    "tf_ref": (str, "TensorFlow tag the tree was chosen for (e.g. v1.4.0)"),
    "sdk": (str, "Android SDK directory (ANDROID_HOME)"),
    "ndk": (str, "Android NDK directory (the profile's recommended revision)"),
    "bazel": (str, "Bazel executable (or bazelisk) for this project's TF version"),
    "bazel_version": (str, "Bazel version to run (USE_BAZEL_VERSION for bazelisk)"),
    "jdk": (str, "JAVA_HOME for Bazel and the SDK tools"),
    "mirrors": (list, "download mirrors tried after the original URLs: BASE/host/path layout (URL or directory)"),
    "remote_cache": (str, "Bazel --remote_cache URL (e.g. http://host:8080/cache)"),
    "remote_executor": (str, "Bazel --remote_executor (grpc://host:port)"),
    "remote_headers": (dict, "extra headers for the remote cache/executor (name = value)"),
}
PATH_KEYS = ("tf_src", "sdk", "ndk", "bazel", "jdk")


class ConfigError(UserError):
    """A mobilebuild.toml that cannot be read or has a value of the wrong type."""


def find_config(start: str | os.PathLike | None = None) -> Path | None:
    """``MOBILEBUILD_CONFIG``, else the nearest ``mobilebuild.toml`` from ``start`` (cwd) upward."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    here = Path(start or Path.cwd()).resolve()
    if here.is_file():
        here = here.parent
    for d in (here, *here.parents):
        candidate = d / FILENAME
        if candidate.is_file():
            return candidate
    return None


def read_raw(path: Path) -> dict[str, Any]:
    """The file's values as written (paths not resolved)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}", f"fix the line named above, or delete {path} and run `mobilebuild setup` again") from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", "check its permissions") from exc
    _check_types(path, data)
    return data


def _check_types(path: Path, data: Mapping[str, Any]) -> None:
    for key, value in data.items():
        spec = KNOWN_KEYS.get(key)
        if spec is None:
            continue
        typ = spec[0]
        if not isinstance(value, typ) or (typ is list and not all(isinstance(v, str) for v in value)) or (
            typ is dict and not all(isinstance(v, str) for v in value.values())
        ):
            want = {str: "a string", list: "a list of strings", dict: "a table of strings"}[typ]  # type: ignore[index]
            raise ConfigError(f"{path}: '{key}' must be {want}, not {value!r}", f"edit {path}")


def load_config(start: str | os.PathLike | None = None) -> dict[str, Any]:
    """Settings from the project's mobilebuild.toml, completed by the user config ({} when
    there is neither).

    Path values are absolute (relative ones are taken from the file's directory);
    ``config_path`` tells which project file was read, ``user_config_path`` which user file.
    The project decides: its mirrors come first (the user's follow), and its remote settings
    replace the user's as a whole (a header meant for one cache never goes to another).
    """
    user = load_user_config()
    path = find_config(start)
    if path is None:
        data: dict[str, Any] = {}
    elif not path.is_file():
        raise ConfigError(f"{ENV_VAR} names a file that does not exist: {path}", f"create it with `mobilebuild setup` or unset {ENV_VAR}")
    else:
        data = read_raw(path)
        for key in PATH_KEYS:
            if isinstance(data.get(key), str) and data[key]:
                if key == "bazel" and "/" not in data[key]:
                    continue  # a command name (bazel, bazelisk) looked up on PATH
                p = Path(data[key]).expanduser()
                data[key] = str(p if p.is_absolute() else (path.parent / p).resolve())
        data["mirrors"] = [_resolve_mirror(m, path.parent) for m in data.get("mirrors", [])]
        data["config_path"] = str(path)
    if not user:
        return data
    data["mirrors"] = data.get("mirrors", []) + [m for m in user.get("mirrors", []) if m not in data.get("mirrors", [])]
    if not any(data.get(k) for k in REMOTE_KEYS):
        data.update({k: user[k] for k in REMOTE_KEYS if k in user})
    data["user_config_path"] = user["user_config_path"]
    return data


# What the user config may hold: settings of the machine and the team rather than of one tree.
REMOTE_KEYS = ("remote_cache", "remote_executor", "remote_headers")
USER_KEYS = ("mirrors", *REMOTE_KEYS)


def load_user_config() -> dict[str, Any]:
    """The user config (``paths.user_config_file()``) as read ({} when there is none)."""
    path = user_config_file()
    if not path.is_file():
        return {}
    data = read_raw(path)
    others = sorted(k for k in data if k not in USER_KEYS)
    if others:
        raise ConfigError(
            f"{path}: {', '.join(others)} cannot be set in the user config",
            f"it holds {', '.join(USER_KEYS)}; put project settings into the project's {FILENAME}",
        )
    if "mirrors" in data:
        data["mirrors"] = [_resolve_mirror(m, path.parent) for m in data["mirrors"]]
    data["user_config_path"] = str(path)
    return data


def _resolve_mirror(base: str, root: Path) -> str:
    if "://" in base:
        return base
    p = Path(base).expanduser()
    return str(p if p.is_absolute() else (root / p).resolve())


# ---------------------------------------------------------------------------- writing


def toml_value(value: Any) -> str:
    """A TOML literal for a string, number, bool, list or flat table."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise ConfigError(f"cannot store {value!r} in {FILENAME}", "use a finite number")
        return repr(value)
    if isinstance(value, (str, os.PathLike)):
        return _toml_string(str(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_string(str(k))} = {toml_value(v)}" for k, v in value.items()) + " }" if value else "{}"
    raise ConfigError(f"cannot store a {type(value).__name__} in {FILENAME}", "use strings, numbers, lists or tables")


def _toml_string(text: str) -> str:
    # JSON's escapes are a subset of TOML's basic-string escapes; TOML also forbids a raw DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def _key_name(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() and key.isascii() else _toml_string(key)


def render_config(values: Mapping[str, Any]) -> str:
    entries = []
    for key in [*KNOWN_KEYS, *sorted(k for k in values if k not in KNOWN_KEYS)]:
        if key not in values or values[key] is None:
            continue
        comment = KNOWN_KEYS.get(key, (None, ""))[1]
        entries.append((_key_name(key), toml_value(values[key]), comment))
    return render("config-mobilebuild.toml.j2", entries=entries).rstrip("\n") + "\n"


def update_config(path: str | os.PathLike, updates: Mapping[str, Any]) -> bool:
    """Merge ``updates`` into the file at ``path`` (a dir means ``dir/mobilebuild.toml``).

    A value of None removes the key. An existing file is edited in place (tomlkit): only the
    keys that change are rewritten, also inside ``[tables]``, so the user's comments, blank
    lines and other keys stay as they were. A new file is rendered from the template. Written atomically, and only
    when the content changes: returns True when the file was (re)written.
    """

    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.parent.is_dir():
        raise ConfigError(f"directory does not exist: {path.parent}", "create it first")
    current = read_raw(path)
    merged = dict(current)
    changes: dict[str, Any] = {}
    for key, value in updates.items():
        if value is not None:
            value = [str(v) for v in value] if isinstance(value, (list, tuple)) else (str(value) if isinstance(value, os.PathLike) else value)
        if merged.get(key) == value:
            continue
        changes[key] = value
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    _check_types(path, merged)
    if not changes and path.is_file():
        return False
    existing = path.read_text(encoding="utf-8") if path.is_file() else ""
    text = _edit_in_place(existing, changes) if existing.strip() else render_config(merged)
    # What we write must read back to exactly what we meant.
    if _loads(text) != merged:
        raise ConfigError(f"internal: {FILENAME} would not round-trip", "please report it")
    return write_if_changed(path, text)


def _loads(text: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return None


def _edit_in_place(text: str, changes: Mapping[str, Any]) -> str:
    """``text`` with ``changes`` applied by tomlkit, which keeps everything else as written:
    comments (also inside ``[tables]``), blank lines, key order, quoting, multi-line values.

    A changed value keeps its trailing ``# comment``; a table the user wrote stays a table and
    only its changed keys are touched; a removed key takes along the ``# comment`` line this
    module wrote above it; a new key goes in with that comment before the first table.
    """
    doc = tomlkit.parse(text)
    for key, value in changes.items():
        if value is None:
            _remove(doc, key)
        elif key in doc:
            _replace(doc, key, value)
        else:
            _add(doc, key, value)
    out = tomlkit.dumps(doc)
    # A removed key and its comment leave their blank lines behind: no longer run than before.
    longest = max((len(m.group()) for m in re.finditer(r"\n+", text)), default=1)
    return re.sub(r"\n{%d,}" % (max(longest, 2) + 1), "\n" * max(longest, 2), out)


def _replace(doc, key: str, value: Any) -> None:
    old = doc[key]
    if isinstance(value, Mapping) and isinstance(old, (tomlkit.items.Table, tomlkit.items.InlineTable)):
        for k in [k for k in old if k not in value]:
            del old[k]
        for k, v in value.items():
            if old.get(k) != v:
                old[k] = v
        return
    new = tomlkit.item(value)
    if isinstance(value, Mapping):
        new = tomlkit.inline_table()
        new.update(value)
    if hasattr(old, "trivia") and not isinstance(old, tomlkit.items.Table):
        new.trivia.comment_ws = old.trivia.comment_ws
        new.trivia.comment = old.trivia.comment
    doc[key] = new


def _remove(doc, key: str) -> None:
    if key not in doc:
        return
    comment = KNOWN_KEYS.get(key, (None, ""))[1]
    body = doc.body
    index = next((i for i, (k, _) in enumerate(body) if k is not None and k.key == key), None)
    if comment and index:
        above = body[index - 1][1]
        if isinstance(above, tomlkit.items.Comment) and above.as_string().strip() == f"# {comment}":
            # Emptied rather than taken out: tomlkit's container indexes its items by position.
            above.trivia.indent = above.trivia.comment = above.trivia.comment_ws = above.trivia.trail = ""
    doc.remove(key)


def _add(doc, key: str, value: Any) -> None:
    item = tomlkit.item(value)
    if isinstance(value, Mapping):
        item = tomlkit.inline_table()
        item.update(value)
    comment = KNOWN_KEYS.get(key, (None, ""))[1]
    # tomlkit puts a new plain key before the first table; the comment line (ours, as in a
    # rendered file) and a blank line go in front of it.
    item.trivia.indent = "\n" + (f"# {comment}\n" if comment else "")
    doc.add(key, item)
