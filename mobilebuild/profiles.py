"""Version profiles: which facts (Bazel, SDK, NDK, paths, constants, deps) belong to which TF version.

The knowledge lives as data in ``toolchains/*.toml``; one file per family of versions, with
per-version overrides in ``[versions."X.Y"]`` deep-merged over the family's base tables.
Adding a family is adding a file; no Python changes.
"""

from __future__ import annotations

import copy
import datetime
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from mobilebuild.errors import UserError
from mobilebuild import versions
from mobilebuild.paths import TOOLCHAINS_DIR
from mobilebuild.versions import version_str

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


# Version parsing and comparison belong to versions.py; these names stay for the profile users.
parse_version = versions.release


def deep_merge(base: dict, override: dict) -> dict:
    """A new dict: ``override`` merged over ``base`` table by table (neither is changed)."""
    out = _copied(base)
    _merge_into(out, override)
    return out


def _merge_into(out: dict, override: dict) -> None:
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            _merge_into(out[key], value)
        else:
            out[key] = _copied(value)


# TOML's immutable leaves; anything else is left to copy.deepcopy.
_LEAVES = (str, int, float, bool, type(None), datetime.date, datetime.time)


def _copied(value):
    """A deep copy of TOML data (tables, arrays, leaves): copy.deepcopy's result, made without
    its bookkeeping (every command with a TF version merges the profiles: tens of ms)."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    if isinstance(value, _LEAVES):
        return value
    return copy.deepcopy(value)


@dataclass
class Profile:
    """The merged facts for one TF version."""

    family: str
    version: tuple[int, int, int]
    data: dict[str, Any] = field(repr=False)
    source: Path = field(repr=False, default=Path())

    @property
    def version_text(self) -> str:
        return version_str(self.version)

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, dotted: str, default: Any = None) -> Any:
        """``profile.get("android.bazel_target")``."""
        node: Any = self.data
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def require(self, dotted: str) -> Any:
        value = self.get(dotted)
        if value is None:
            raise UserError(
                f"the {self.family} profile has no '{dotted}' for TensorFlow {self.version_text}",
                f"add it to {self.source.name} in toolchains/",
            )
        return value

    def runtime_ops_name(self, runtime: str = "android") -> str | None:
        """The op-set file (under toolchains/, without ``.opdefs.json``) of one phone runtime
        of this version: ``android`` (the demo's Bazel library) or ``makefile`` (iOS libraries,
        the TensorFlow-experimental pod, Raspberry Pi). None: the profile names none."""
        pattern = self.get(f"runtime_ops.{runtime}")
        if not pattern:
            return None
        return pattern.format(major=self.version[0], minor=self.version[1], patch=self.version[2])


@lru_cache(maxsize=None)
def _families(directory: str) -> tuple[tuple[Path, dict], ...]:
    raw: dict[str, tuple[Path, dict]] = {}
    for path in sorted(Path(directory).glob("*.toml")):
        with open(path, "rb") as f:
            data = tomllib.load(f)
        if "family" in data:
            raw[data["family"]["name"]] = (path, data)
    return tuple((path, _inherited(name, raw, ())) for name, (path, _) in raw.items())


def _inherited(name: str, raw: dict[str, tuple[Path, dict]], seen: tuple[str, ...]) -> dict:
    """A family's tables with those of the family it ``extends`` underneath (deep-merged; the
    parent's ``[versions]`` stay with the parent: they belong to its own range)."""
    path, data = raw[name]
    parent = data["family"].get("extends")
    if not parent:
        return data
    if parent in seen or parent not in raw:
        problem = "extends itself" if parent in seen else f"extends {parent!r}, which no file in toolchains/ defines"
        raise UserError(f"the version profile {path.name} {problem}", "fix [family] extends in that file")
    base = {k: v for k, v in _inherited(parent, raw, seen + (name,)).items() if k != "versions"}
    return deep_merge(base, data)


def families(directory: Path = TOOLCHAINS_DIR) -> list[tuple[Path, dict]]:
    return list(_families(str(directory)))


def supported_ranges(directory: Path = TOOLCHAINS_DIR) -> list[str]:
    return [
        f"{d['family']['min_version']} <= TF < {d['family']['max_version']} ({d['family']['name']})"
        for _, d in families(directory)
    ]


def load_profile(version: str | tuple[int, ...], directory: Path = TOOLCHAINS_DIR, kind: str | None = None) -> Profile:
    """The profile for a TF version (``"1.4.0"``, ``"v1.1.0"``, ``(1, 2, 0)``); with ``kind``
    only families of that kind (``tf-mobile``, ``tflite``) are considered."""
    v = versions.release(version) if isinstance(version, str) else tuple(version) + (0,) * (3 - len(version))
    v = v[:3]
    for path, data in families(directory):
        fam = data["family"]
        if kind is not None and fam.get("kind") != kind:
            continue
        lo, hi = versions.release(fam["min_version"]), versions.release(fam["max_version"])
        if versions.at_least(v, lo) and versions.older_than(v, hi):
            base = {k: val for k, val in data.items() if k != "versions"}
            merged = base
            for key, override in data.get("versions", {}).items():
                if versions.release(key)[:2] == v[:2]:
                    merged = deep_merge(merged, override)
            return Profile(family=fam["name"], version=v, data=merged, source=path)  # type: ignore[arg-type]
    raise UserError(
        f"TensorFlow {version_str(v)} is not supported: no version profile covers it",
        "supported: " + "; ".join(supported_ranges(directory)) + " (profiles are data in toolchains/)",
    )


def load_defaults(directory: Path = TOOLCHAINS_DIR) -> dict[str, Any]:
    """toolchains/defaults.toml: the facts used when no TensorFlow version is named."""
    with open(directory / "defaults.toml", "rb") as f:
        return tomllib.load(f)
