"""Safe extraction: strip-components, permissions, and refusal of members escaping the target."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile

import pytest

from helpers.archive_builders import make_tar_gz, make_zip
from mobilebuild.net.archives import extract
from mobilebuild.errors import ArchiveError


def write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data)
    return p


def test_tar_gz_strip_components_and_links_inside(tmp_path):
    arc = write(tmp_path, "a.tar.gz", make_tar_gz(
        {"top/a.txt": "A", "top/sub/b.txt": "B", "top/bin/tool": "#!/bin/sh\n"},
        links={"top/link.txt": "sub/b.txt"},
        modes={"top/bin/tool": 0o755},
    ))
    out = extract(arc, tmp_path / "out", strip_components=1)
    assert (out / "a.txt").read_text() == "A"
    assert (out / "sub/b.txt").read_text() == "B"
    assert os.readlink(out / "link.txt") == "sub/b.txt"
    assert os.access(out / "bin/tool", os.X_OK)


def test_zip_strip_keeps_exec_bits_and_symlinks(tmp_path):
    arc = write(tmp_path, "n.zip", make_zip(
        {"android-ndk-r12b/ndk-build": "#!/bin/sh\n", "android-ndk-r12b/source.properties": "Pkg.Revision = 12.1.2977051\n"},
        links={"android-ndk-r12b/ndk-link": "ndk-build"},
        modes={"android-ndk-r12b/ndk-build": 0o755},
    ))
    out = extract(arc, tmp_path / "ndk", strip_components=1)
    assert os.access(out / "ndk-build", os.X_OK)
    assert os.readlink(out / "ndk-link") == "ndk-build"
    assert "12.1" in (out / "source.properties").read_text()


def _tar_with(member: tarfile.TarInfo, data: bytes = b"x") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        ok = tarfile.TarInfo("top/ok.txt")
        ok.size = 1
        tar.addfile(ok, io.BytesIO(b"k"))
        if member.isreg():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["top/../../evil.txt", "/tmp/evil-abs.txt"])
def test_tar_path_escape_is_refused(tmp_path, name):
    arc = write(tmp_path, "slip.tar.gz", _tar_with(tarfile.TarInfo(name)))
    with pytest.raises(ArchiveError, match="escaping the target dir"):
        extract(arc, tmp_path / "out" / "dest", strip_components=1)
    assert not (tmp_path / "out" / "dest").exists()
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


@pytest.mark.parametrize("target", ["../../../etc", "/etc"])
def test_tar_symlink_escape_is_refused(tmp_path, target):
    link = tarfile.TarInfo("top/escape")
    link.type = tarfile.SYMTYPE
    link.linkname = target
    arc = write(tmp_path, "link.tar.gz", _tar_with(link))
    with pytest.raises(ArchiveError):
        extract(arc, tmp_path / "dest", strip_components=1)
    assert not (tmp_path / "dest").exists()


def test_zip_slip_is_refused(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("top/ok.txt", "ok")
        zf.writestr("top/../../zipslip.txt", "evil")
    arc = write(tmp_path, "slip.zip", buf.getvalue())
    with pytest.raises(ArchiveError, match="escaping the target dir"):
        extract(arc, tmp_path / "sub" / "dest")
    assert not (tmp_path / "zipslip.txt").exists() and not (tmp_path / "sub" / "dest").exists()


def test_zip_symlink_escape_is_refused(tmp_path):
    arc = write(tmp_path, "l.zip", make_zip({"top/a.txt": "a"}, links={"top/out": "../../../etc/passwd"}))
    with pytest.raises(ArchiveError, match="symlink escaping"):
        extract(arc, tmp_path / "dest", strip_components=1)
    assert not (tmp_path / "dest").exists()


def test_zip_write_through_inner_symlink_is_refused(tmp_path):
    """A link to a directory inside, then a member written through a link to outside."""
    outside = tmp_path / "outside"
    outside.mkdir()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        info = zipfile.ZipInfo("d")
        info.external_attr = (0o120777) << 16
        zf.writestr(info, str(outside))
        zf.writestr("d/pwned.txt", "evil")
    arc = write(tmp_path, "w.zip", buf.getvalue())
    with pytest.raises(ArchiveError):
        extract(arc, tmp_path / "dest")
    assert not (outside / "pwned.txt").exists()


def test_damaged_archive_and_nonempty_target(tmp_path):
    good = make_tar_gz({"t/a": "a"})
    arc = write(tmp_path, "cut.tar.gz", good[: len(good) // 2])
    with pytest.raises(ArchiveError):
        extract(arc, tmp_path / "d1")
    (tmp_path / "d2").mkdir()
    (tmp_path / "d2" / "keep").write_text("mine")
    with pytest.raises(ArchiveError, match="not empty"):
        extract(write(tmp_path, "ok.tar.gz", good), tmp_path / "d2")
    assert (tmp_path / "d2" / "keep").read_text() == "mine"


def test_zip_with_a_corrupted_member_is_refused_whole(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("top/a.txt", "A" * 100)
        zf.writestr("top/b.txt", "B" * 100)
    data = bytearray(buf.getvalue())
    data[data.index(b"B" * 100) + 50] ^= 0xFF  # a flipped bit in b.txt: its CRC no longer matches
    arc = write(tmp_path, "crc.zip", bytes(data))
    with pytest.raises(ArchiveError, match="damaged"):
        extract(arc, tmp_path / "dest", strip_components=1)
    assert not (tmp_path / "dest").exists()


def test_tar_hard_link_escape_is_refused(tmp_path):
    """A hard link whose target climbs out of the archive: the data filter refuses it."""
    link = tarfile.TarInfo("top/passwd")
    link.type = tarfile.LNKTYPE
    link.linkname = "top/../../../etc/passwd"
    arc = write(tmp_path, "hl.tar.gz", _tar_with(link))
    with pytest.raises(ArchiveError, match="escaping the target dir"):
        extract(arc, tmp_path / "dest", strip_components=1)
    assert not (tmp_path / "dest").exists()
