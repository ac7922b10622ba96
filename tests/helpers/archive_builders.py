"""Archives and digests built in tests (tar.gz / zip with modes and symlinks), tree snapshots."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def make_tar_gz(files: dict[str, bytes | str], *, links: dict[str, str] | None = None, modes: dict[str, int] | None = None) -> bytes:
    """A .tar.gz with ``files`` (name -> content) and symlinks (name -> target), in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = (modes or {}).get(name, 0o644)
            info.mtime = 1_500_000_000
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def make_zip(files: dict[str, bytes | str], *, links: dict[str, str] | None = None, modes: dict[str, int] | None = None) -> bytes:
    """A .zip with unix modes (so executables keep their x bit) and optional symlinks."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            info = zipfile.ZipInfo(name, date_time=(2017, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | (modes or {}).get(name, 0o644)) << 16
            zf.writestr(info, content)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name, date_time=(2017, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def tree_snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """path -> (mtime_ns, size) of every file under root: 'nothing rewritten' checks."""
    out = {}
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            p = Path(dirpath) / f
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_mtime_ns, st.st_size)
    return out
