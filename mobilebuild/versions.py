"""The one owner of version comparison: TensorFlow tags, Bazel, SDK build-tools, NDK, Xcode.

Comparisons go through ``packaging.version`` so pre-releases sort the way their publishers
mean them: build-tools ``26.0.0-rc1`` comes before ``26.0.0``, ``v1.4.0-rc0`` before ``1.4.0``.
Tools also print versions packaging does not accept (Bazel's ``7.0.0-pre.20231011.2``,
Debian's ``no_version``); ``parse`` reads their leading release numbers and the first
pre-release marker it understands, and gives None when there is no number at all.

Profiles and flag tables keep versions as ``(major, minor, patch)`` tuples (``release``);
every ``<``/``>`` between versions is one of the functions below.
"""

from __future__ import annotations

import re
from typing import Iterable, Union

from packaging.version import InvalidVersion, Version

from mobilebuild.errors import UserError

VersionLike = Union[str, tuple, Version]

_LEADING = re.compile(r"^\s*v?(\d+(?:\.\d+)*)(?:[-_.]?(a|alpha|b|beta|c|rc|pre|preview)[-_.]?(\d+)?)?", re.I)


def parse(value: VersionLike | None) -> Version | None:
    """A comparable version (None: ``value`` has no version number in front)."""
    if value is None:
        return None
    if isinstance(value, Version):
        return value
    if isinstance(value, tuple):
        return Version(".".join(str(int(x)) for x in value)) if value else None
    text = str(value).strip()
    try:
        return Version(text)
    except InvalidVersion:
        pass
    m = _LEADING.match(text)
    if not m:
        return None
    release, tag, number = m.groups()
    if tag:
        return Version(f"{release}{tag}{number or 0}")
    return Version(release)


def release(value: VersionLike) -> tuple[int, int, int]:
    """'1.4.0' / 'v1.4.0-rc1' / '1.4' -> (1, 4, 0): the release numbers (missing parts are 0,
    suffixes dropped). Raises UserError for text without a version."""
    v = parse(value)
    if v is None:
        raise UserError(f"not a version: {value!r}", "use a version like 1.4 or a tag like v1.4.0")
    parts = tuple(v.release) + (0, 0, 0)
    return parts[:3]  # type: ignore[return-value]


def version_str(v: Iterable[int]) -> str:
    return ".".join(str(x) for x in v)


def _required(value: VersionLike) -> Version:
    v = parse(value)
    if v is None:
        raise UserError(f"not a version: {value!r}", "use a version like 1.4 or 26.0.2")
    return v


def compare(a: VersionLike, b: VersionLike) -> int:
    """-1, 0 or 1 as ``a`` is older than, the same as, or newer than ``b``."""
    va, vb = _required(a), _required(b)
    return (va > vb) - (va < vb)


def at_least(version: VersionLike, minimum: VersionLike) -> bool:
    return compare(version, minimum) >= 0


def older_than(version: VersionLike, other: VersionLike) -> bool:
    return compare(version, other) < 0


def in_range(version: VersionLike, lo: VersionLike | None, hi: VersionLike | None) -> bool:
    """``lo <= version <= hi`` (an absent bound does not limit)."""
    return (lo is None or at_least(version, lo)) and (hi is None or compare(version, hi) <= 0)


def sort_key(value: VersionLike) -> tuple[int, Version]:
    """For ``sorted``: versions in order, anything without a version first."""
    v = parse(value)
    return (0, Version("0")) if v is None else (1, v)


def newest(values: Iterable[str]) -> str | None:
    found = sorted(values, key=sort_key)
    return found[-1] if found else None
