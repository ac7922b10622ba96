"""Safe extraction of downloaded archives (tar.gz / tgz / tar / zip) with strip-components.

Nothing in an archive may land outside the target directory: tar members go through the
standard library's ``data`` filter (absolute paths, ``..``, device files and links pointing
outside are refused); zip has no such filter in the standard library, so zip member names and
zip symlinks are checked here before anything is written. Refusal raises ``ArchiveError``
naming the member, and the target directory is left without partial content: extraction goes
into a temporary directory that is renamed into place only when complete.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from mobilebuild import console
from mobilebuild.errors import ArchiveError


def archive_kind(path: str | os.PathLike) -> str:
    """'tar' or 'zip', from the content (a cache file name may not tell)."""
    p = Path(path)
    if zipfile.is_zipfile(p):
        return "zip"
    try:
        if tarfile.is_tarfile(p):
            return "tar"
    except (OSError, EOFError, zlib.error):
        raise ArchiveError(f"archive {p.name} is damaged (it ends early)", "delete it from the cache and download it again") from None
    raise ArchiveError(
        f"not an archive this tool can extract: {p}",
        "expected a .tar.gz, .tgz, .tar or .zip file; delete it from the cache and download again",
    )


def extract(archive: str | os.PathLike, dest: str | os.PathLike, strip_components: int = 0) -> Path:
    """Extract ``archive`` into ``dest`` (created; must not exist or be empty).

    ``strip_components`` drops that many leading path parts of every member, as
    ``tar --strip-components`` does. The result appears at ``dest`` atomically.
    """
    archive, dest = Path(archive), Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ArchiveError(f"extraction target is not empty: {dest}", "remove it first or choose another directory")
    dest.parent.mkdir(parents=True, exist_ok=True)
    kind = archive_kind(archive)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".extract", dir=dest.parent))
    try:
        if kind == "tar":
            _extract_tar(archive, tmp, strip_components)
        else:
            _extract_zip(archive, tmp, strip_components)
        if dest.exists():
            dest.rmdir()
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _strip(name: str, n: int) -> str | None:
    """Member name without its first ``n`` parts; None when nothing is left (skip it)."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if name.startswith("/"):
        # Absolute names are never stripped into relative ones: let the safety check refuse them.
        return name
    rest = parts[n:]
    return "/".join(rest) if rest else None


def _extract_tar(archive: Path, dest: Path, strip: int) -> None:
    try:
        with tarfile.open(archive) as tar:
            members = []
            for m in tar.getmembers():
                if m.name.startswith("/") or (m.islnk() and m.linkname.startswith("/")):
                    # The data filter would silently make it relative; an absolute member
                    # means a malicious or broken archive: refuse it.
                    raise ArchiveError(
                        f"archive {archive.name} has a member escaping the target dir: absolute path {m.name!r}",
                        "refused to extract it; the archive is malicious or broken — get it from a trusted source",
                    )
                name = _strip(m.name, strip)
                if name is None:
                    continue
                changes = {"name": name}
                if m.islnk():
                    # Hard link targets are archive paths: they are stripped like names.
                    target = _strip(m.linkname, strip)
                    if target is None:
                        raise ArchiveError(f"archive {archive.name}: hard link {m.name} points at a stripped path", "the archive is malformed")
                    changes["linkname"] = target
                members.append(m.replace(**changes, deep=False))
            with console.counter(f"extracting {archive.name}", len(members)) as advance:
                for m in members:
                    try:
                        tar.extract(m, dest, filter="data")
                    except tarfile.FilterError as exc:
                        raise ArchiveError(
                            f"archive {archive.name} has a member escaping the target dir: {exc}",
                            "refused to extract it; the archive is malicious or broken — get it from a trusted source",
                        ) from exc
                    advance(1)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        if isinstance(exc, ArchiveError):
            raise
        raise ArchiveError(f"archive {archive.name} is damaged: {exc}", "delete it from the cache and download it again") from exc


def _zip_member_path(info: zipfile.ZipInfo, archive: Path, strip: int) -> str | None:
    raw = info.filename
    parts = raw.replace("\\", "/").split("/")
    if raw.startswith(("/", "\\")) or (len(raw) > 1 and raw[1] == ":") or ".." in parts:
        raise ArchiveError(
            f"archive {archive.name} has a member escaping the target dir: {raw!r}",
            "refused to extract it; the archive is malicious or broken — get it from a trusted source",
        )
    return _strip(raw, strip)


def _inside(root: Path, candidate: str) -> bool:
    root_real = os.path.realpath(root)
    real = os.path.realpath(candidate)
    return real == root_real or real.startswith(root_real + os.sep)


def _extract_zip(archive: Path, dest: Path, strip: int) -> None:
    try:
        with zipfile.ZipFile(archive) as zf, console.counter(f"extracting {archive.name}", len(zf.infolist())) as advance:
            for info in zf.infolist():
                advance(1)
                rel = _zip_member_path(info, archive, strip)
                if rel is None:
                    continue
                target = dest / rel
                # A directory of this member's path may be a symlink extracted earlier:
                # refuse anything whose real parent is not inside dest.
                if not _inside(dest, str(target.parent)) and target.parent.exists():
                    raise ArchiveError(f"archive {archive.name}: member {info.filename!r} would be written through a link outside the target dir", "refused to extract it")
                mode = (info.external_attr >> 16) & 0xFFFF
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if not _inside(dest, str(target.parent)):
                    raise ArchiveError(f"archive {archive.name}: member {info.filename!r} escapes the target dir through a link", "refused to extract it")
                if stat.S_ISLNK(mode):
                    link = zf.read(info).decode("utf-8", "surrogateescape")
                    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), link))
                    if link.startswith("/") or resolved.startswith("../") or resolved == "..":
                        raise ArchiveError(
                            f"archive {archive.name} has a symlink escaping the target dir: {info.filename} -> {link}",
                            "refused to extract it; the archive is malicious or broken",
                        )
                    os.symlink(link, target)
                    continue
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
                # zipfile drops permissions; executables (ndk-build, sdkmanager) need their x bits.
                perms = mode & 0o777
                if perms:
                    os.chmod(target, (perms | 0o600) & 0o755)
    except zipfile.BadZipFile as exc:
        raise ArchiveError(f"archive {archive.name} is damaged: {exc}", "delete it from the cache and download it again") from exc
