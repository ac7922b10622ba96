"""The downloader against a real HTTP server on 127.0.0.1 with injected faults.

Every behaviour is observed from outside: the bytes in the cache, the requests the server
recorded (paths, Range / If-Range headers, statuses, bytes sent) and the errors raised.
"""

from __future__ import annotations

import os
import time
import pytest

from helpers.archive_builders import make_tar_gz, sha1, sha256
from helpers.httpserver import Fault
from mobilebuild.net import downloads
from mobilebuild.net.downloads import Artifact, fetch, fetch_many, fetch_with_stats, mirror_url
from mobilebuild.errors import ChecksumError, DownloadError

BLOB = os.urandom(300_000)


def test_fetch_verifies_and_caches_by_sha256(server):
    url = server.add("/files/blob.bin", BLOB)
    path = fetch(url, sha256=sha256(BLOB))
    assert path.read_bytes() == BLOB
    assert path.parent.name == sha256(BLOB) and path.parent.parent.name == "sha256"
    # Second request: served from the cache, the server sees nothing.
    before = len(server.requests)
    stats = fetch_with_stats(url, sha256=sha256(BLOB))
    assert stats.source is None and stats.path == path
    assert len(server.requests) == before
    # Nothing left behind in the partial area.
    assert not any((downloads.downloads_root() / "partial").glob("*.part"))


def test_500_then_ok_is_retried(server):
    url = server.add("/a.bin", BLOB)
    server.fault("/a.bin", Fault.http_error(500), Fault.http_error(503))
    assert fetch(url, sha256=sha256(BLOB)).read_bytes() == BLOB
    assert [r.status for r in server.requests_for("/a.bin")] == [500, 503, 200]


def test_429_retry_after_is_honoured(server, monkeypatch):
    monkeypatch.setenv("MOBILEBUILD_RETRY_MAX", "5")
    url = server.add("/limited.bin", BLOB)
    server.fault("/limited.bin", Fault.http_error(429, retry_after="1"))
    fetch(url, sha256=sha256(BLOB))
    first, second = server.requests_for("/limited.bin")
    assert first.status == 429 and second.status == 200
    assert second.time - first.time >= 0.9  # waited as told, not the tiny test backoff


def test_gives_up_after_the_configured_attempts(server, monkeypatch):
    monkeypatch.setenv("MOBILEBUILD_RETRIES", "3")
    url = server.add("/down.bin", BLOB)
    server.fault("/down.bin", *[Fault.http_error(502)] * 5)
    with pytest.raises(DownloadError) as exc:
        fetch(url, sha256=sha256(BLOB))
    assert "HTTP 502" in exc.value.message and url in exc.value.message
    assert len(server.requests_for("/down.bin")) == 3


def test_dropped_connection_resumes_with_range_and_if_range(server):
    url = server.add("/big.tar.gz", BLOB, etag='"v1"')
    server.fault("/big.tar.gz", Fault.drop_after(120_000))
    path = fetch(url, sha256=sha256(BLOB))
    assert path.read_bytes() == BLOB
    first, second = server.requests_for("/big.tar.gz")
    assert first.range is None and first.sent == 120_000
    # Only the rest was asked for, validated by the ETag the first answer carried.
    assert second.range == "bytes=120000-" and second.if_range == '"v1"'
    assert second.status == 206 and second.sent == len(BLOB) - 120_000


def test_resume_restarts_when_the_file_changed(server):
    """If-Range with a stale ETag: the server sends the whole (new) file with 200."""
    new = os.urandom(50_000)
    url = server.add("/moving.bin", new, etag='"new"')
    art = Artifact((url,), sha256=sha256(new))
    part, meta = downloads._partial_paths(art)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"x" * 10_000)  # from an interrupted run against the old file
    meta.write_text('{"url": "%s", "etag": "\\"old\\""}' % url)
    assert fetch(art).read_bytes() == new
    (req,) = server.requests_for("/moving.bin")
    assert req.range == "bytes=10000-" and req.if_range == '"old"'
    assert req.status == 200 and req.sent == len(new)


def test_416_with_complete_partial_finishes_without_body(server):
    url = server.add("/done.bin", BLOB, etag='"e"')
    art = Artifact((url,), sha256=sha256(BLOB))
    part, meta = downloads._partial_paths(art)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(BLOB)  # a previous run got every byte but stopped before the rename
    meta.write_text('{"url": "%s", "etag": "\\"e\\""}' % url)
    assert fetch(art).read_bytes() == BLOB
    (req,) = server.requests_for("/done.bin")
    assert req.range == f"bytes={len(BLOB)}-" and req.status == 416


def test_resume_across_runs_after_a_failed_attempt(server, monkeypatch):
    monkeypatch.setenv("MOBILEBUILD_RETRIES", "1")
    url = server.add("/flaky.bin", BLOB, etag='"x"')
    server.fault("/flaky.bin", Fault.drop_after(200_000))
    with pytest.raises(DownloadError, match=r"body shorter than Content-Length \(200000 of 300000 bytes\)"):
        fetch(url, sha256=sha256(BLOB))
    # The next run continues where the last one stopped.
    assert fetch(url, sha256=sha256(BLOB)).read_bytes() == BLOB
    assert server.requests_for("/flaky.bin")[-1].range == "bytes=200000-"


def test_html_page_with_200_is_rejected(server):
    url = server.add("/login.tar.gz", BLOB)
    server.fault("/login.tar.gz", Fault.html())
    with pytest.raises(DownloadError) as exc:
        fetch(url, sha256=sha256(BLOB))
    assert "HTML page" in exc.value.message
    assert not downloads.cache_path(Artifact((url,), sha256=sha256(BLOB))).exists()


def test_html_body_without_html_content_type_is_rejected(server):
    url = server.add("/x.tar.gz", BLOB)
    server.fault("/x.tar.gz", Fault.wrong_body(b"<!DOCTYPE html><html>quota exceeded</html>"))
    with pytest.raises(DownloadError, match="HTML page"):
        fetch(url, sha256=sha256(BLOB))


def test_wrong_checksum_names_url_expected_actual_and_deletes(server):
    wrong = b"not the file" * 100
    url = server.add("/tampered.bin", wrong)
    want = sha256(BLOB)
    with pytest.raises(ChecksumError) as exc:
        fetch(url, sha256=want)
    msg = exc.value.message
    assert url in msg and want in msg and sha256(wrong) in msg
    assert not downloads.cache_path(Artifact((url,), sha256=want)).exists()
    assert not list((downloads.downloads_root() / "partial").glob("*.part"))


def test_sha1_and_size_are_verified(server):
    url = server.add("/ndk.zip", BLOB)
    path = fetch(url, sha1=sha1(BLOB), size=len(BLOB))
    assert path.parent.parent.name == "sha1"
    url2 = server.add("/ndk2.zip", BLOB)
    with pytest.raises(ChecksumError, match=f"expected {len(BLOB) + 1} bytes, got {len(BLOB)}"):
        fetch(url2, sha1=sha1(BLOB), size=len(BLOB) + 1)
    url3 = server.add("/ndk3.zip", BLOB + b"x")
    with pytest.raises(ChecksumError, match=f"sha1 mismatch.*expected {sha1(BLOB)}"):
        fetch(url3, sha1=sha1(BLOB))


def test_body_shorter_than_content_length_is_not_accepted(server, monkeypatch):
    monkeypatch.setenv("MOBILEBUILD_RETRIES", "2")
    url = server.add("/short.bin", BLOB)
    server.fault("/short.bin", Fault.drop_after(1000), Fault.drop_after(0))
    with pytest.raises(DownloadError, match="gave up after 2 attempts"):
        fetch(url, sha256=sha256(BLOB))


def test_truncated_gzip_is_rejected_when_no_digest_is_known(server):
    data = make_tar_gz({"pkg/a.txt": os.urandom(200_000).hex()})
    url = server.add("/pkg.tar.gz", data)
    server.fault("/pkg.tar.gz", Fault.truncated(len(data) // 2))
    with pytest.raises(ChecksumError, match="truncated gzip"):
        fetch(url, allow_unverified=True)
    # The whole file passes, and is accepted only with an explicit opt-in.
    assert fetch(url, allow_unverified=True).read_bytes() == data


def test_no_digest_is_refused_by_default(server):
    url = server.add("/anything.bin", BLOB)
    with pytest.raises(DownloadError, match="refusing to use an unverified download"):
        fetch(url)
    assert server.requests_for("/anything.bin") == []


def test_slow_server_times_out_and_is_retried(server, monkeypatch):
    monkeypatch.setenv("MOBILEBUILD_HTTP_TIMEOUT", "0.3")
    url = server.add("/slow.bin", BLOB)
    server.fault("/slow.bin", Fault.slow(1.0))
    assert fetch(url, sha256=sha256(BLOB)).read_bytes() == BLOB
    assert len(server.requests_for("/slow.bin")) == 2


def test_mirror_fallback_bazel_layout(server):
    original = "https://bitbucket.example.invalid/eigen/eigen/get/abc.tar.gz"
    server.add("/mirror/bitbucket.example.invalid/eigen/eigen/get/abc.tar.gz", BLOB)
    assert mirror_url(server.url("/mirror"), original) == server.url("/mirror/bitbucket.example.invalid/eigen/eigen/get/abc.tar.gz")
    stats = fetch_with_stats(original, sha256=sha256(BLOB), mirrors=[server.url("/mirror/")])
    assert stats.path.read_bytes() == BLOB
    assert stats.source.startswith(server.base)
    assert stats.failures and stats.failures[0][0] == original  # the dead host was tried first


def test_first_url_404_then_second_url(server):
    server.add("/good/x.bin", BLOB)
    stats = fetch_with_stats([server.url("/gone/x.bin"), server.url("/good/x.bin")], sha256=sha256(BLOB))
    assert stats.source == server.url("/good/x.bin")
    assert "HTTP 404" in stats.failures[0][1]


def test_bad_mirror_content_falls_through_to_the_next(server):
    server.add("/m1/host.invalid/f.bin", b"evil" * 10)
    server.add("/m2/host.invalid/f.bin", BLOB)
    stats = fetch_with_stats("https://host.invalid/f.bin", sha256=sha256(BLOB), mirrors=[server.url("/m1"), server.url("/m2")])
    assert stats.source == server.url("/m2/host.invalid/f.bin")
    assert any("sha256 mismatch" in why for _, why in stats.failures)


def test_offline_uses_cache_and_local_mirrors_only(server, tmp_path):
    url = "https://dl.example.invalid/tools/t.zip"
    with pytest.raises(DownloadError) as exc:
        fetch(url, sha256=sha256(BLOB), offline=True)
    assert "offline" in exc.value.message and "t.zip" in exc.value.message and sha256(BLOB) in exc.value.message
    assert "dl.example.invalid/tools/t.zip" in exc.value.hint
    # A local directory mirror in Bazel layout works offline.
    local = tmp_path / "mirror"
    (local / "dl.example.invalid/tools").mkdir(parents=True)
    (local / "dl.example.invalid/tools/t.zip").write_bytes(BLOB)
    path = fetch(url, sha256=sha256(BLOB), offline=True, mirrors=[str(local)])
    assert path.read_bytes() == BLOB
    # Now cached: offline works without the mirror, and no request ever went out.
    assert fetch(url, sha256=sha256(BLOB), offline=True) == path
    assert server.requests == []


def test_mirrors_from_mobilebuild_toml(server, tmp_path, monkeypatch):
    from mobilebuild.config import update_config

    server.add("/cfgmirror/files.invalid/a.bin", BLOB)
    update_config(tmp_path, {"mirrors": [server.url("/cfgmirror")]})
    monkeypatch.chdir(tmp_path)
    stats = fetch_with_stats("https://files.invalid/a.bin", sha256=sha256(BLOB))
    assert stats.source == server.url("/cfgmirror/files.invalid/a.bin")


def test_fetch_many_uses_the_mirrors_of_mobilebuild_toml(server, tmp_path, monkeypatch):
    """`deps` passes only --mirror: the project's mirrors come from fetch_many itself."""
    from mobilebuild.config import update_config

    blobs = {"b1.bin": os.urandom(3000), "b2.bin": os.urandom(3001)}
    for name, data in blobs.items():
        server.add(f"/cfgm/files.invalid/{name}", data)
    update_config(tmp_path, {"mirrors": [server.url("/cfgm")]})
    monkeypatch.chdir(tmp_path)
    paths = fetch_many([Artifact((f"https://files.invalid/{n}",), sha256=sha256(d)) for n, d in blobs.items()], jobs=2)
    assert [p.read_bytes() for p in paths] == list(blobs.values())
    assert sorted(r.path for r in server.requests) == ["/cfgm/files.invalid/b1.bin", "/cfgm/files.invalid/b2.bin"]


def test_fetch_many_parallel_and_reports_every_failure(server):
    blobs = [os.urandom(20_000 + i) for i in range(6)]
    urls = [server.add(f"/many/{i}.bin", b) for i, b in enumerate(blobs)]
    paths = fetch_many([Artifact((u,), sha256=sha256(b)) for u, b in zip(urls, blobs)], jobs=3)
    assert [p.read_bytes() for p in paths] == blobs
    missing = [("https://a.invalid/x.bin", sha256(b"x")), ("https://b.invalid/y.bin", sha256(b"y"))]
    with pytest.raises(DownloadError) as exc:
        fetch_many([Artifact((u,), sha256=s) for u, s in missing], offline=True)
    assert "2 of 2 downloads failed" in exc.value.message
    assert "x.bin" in exc.value.message and "y.bin" in exc.value.message


def test_proxy_from_environment_is_used(server, monkeypatch):
    """requests' environment proxy support stays on: a proxy that is our server sees the
    absolute URL of the request (how a forward proxy is addressed)."""
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.setenv("HTTP_PROXY", server.base)
    server.add("http://upstream.invalid/p.bin", BLOB)
    assert fetch("http://upstream.invalid/p.bin", sha256=sha256(BLOB)).read_bytes() == BLOB
    assert server.requests_for("http://upstream.invalid/p.bin")


def test_cache_survives_a_second_process(server):
    """The cache is on disk: a new process finds the file without the network."""
    import subprocess
    import sys

    url = server.add("/p.bin", BLOB)
    fetch(url, sha256=sha256(BLOB))
    code = (
        "from mobilebuild.net.downloads import fetch_with_stats;"
        f"s=fetch_with_stats({url!r}, sha256={sha256(BLOB)!r}, offline=True);"
        "print(s.source)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "None"
    assert len(server.requests_for("/p.bin")) == 1



def test_a_cache_that_cannot_be_written_is_a_user_error(server):
    """A full disk (here: a file-size limit, EFBIG) while writing into the cache is a
    DownloadError with a fix, not a crash; no partial file is left behind."""
    import subprocess
    import sys

    url = server.add("/big.bin", os.urandom(200_000))
    code = (
        "import resource, signal\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, 50_000))\n"
        "from mobilebuild.net.downloads import downloads_root, fetch\n"
        "from mobilebuild.errors import DownloadError\n"
        "try:\n"
        f"    fetch({url!r}, size=200_000)\n"
        "except DownloadError as exc:\n"
        "    print(type(exc).__name__, '|', exc.message, '|', exc.hint)\n"
        "print('parts:', sorted(p.name for p in (downloads_root() / 'partial').glob('*.part')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), timeout=60)
    assert out.returncode == 0, out.stderr
    assert "DownloadError | cannot write big.bin into the download cache" in out.stdout
    assert "MOBILEBUILD_CACHE" in out.stdout and "parts: []" in out.stdout

def test_netrc_credentials_are_sent(server, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login builder password s3cret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    url = server.add("/private/p.bin", BLOB, basic_auth=("builder", "s3cret"))
    assert fetch(url, sha256=sha256(BLOB)).read_bytes() == BLOB
    assert server.requests_for("/private/p.bin")[-1].status == 200


def test_unknown_host_is_not_retried(server, monkeypatch):
    monkeypatch.setenv("MOBILEBUILD_RETRY_BASE", "5")  # a retry would make this test slow
    server.add("/m/no-such-host.invalid/f.bin", BLOB)
    start = time.monotonic()
    stats = fetch_with_stats("http://no-such-host.invalid/f.bin", sha256=sha256(BLOB), mirrors=[server.url("/m")])
    assert stats.source == server.url("/m/no-such-host.invalid/f.bin")
    assert "host not found" in stats.failures[0][1]
    assert time.monotonic() - start < 4


def test_fetch_many_runs_in_parallel_but_bounded(server):
    """Every answer is slow, so the server sees how many requests overlap: more than one,
    never more than ``jobs``."""
    blobs = [os.urandom(5_000 + i) for i in range(7)]
    arts = []
    for i, b in enumerate(blobs):
        url = server.add(f"/par/{i}.bin", b)
        server.fault(f"/par/{i}.bin", Fault.slow(0.3))
        arts.append(Artifact((url,), sha256=sha256(b)))
    assert [p.read_bytes() for p in fetch_many(arts, jobs=3)] == blobs
    assert 2 <= server.max_inflight <= 3


def test_progress_is_one_plain_line_per_file_when_not_a_tty(server, capsys, monkeypatch):
    """stderr is not a terminal here: no live bar, no carriage returns or escape codes, just
    one line per finished file; with --json not even that (stdout stays empty either way)."""
    from mobilebuild import console

    url = server.add("/plain/blob.bin", BLOB)
    fetch(url, sha256=sha256(BLOB))
    out, err = capsys.readouterr()
    assert out == ""
    # Decimal units, as the progress bar (rich's DownloadColumn) shows the same file.
    assert err == f"downloaded blob.bin (300.0 kB) from 127.0.0.1:{server.port}\n"
    monkeypatch.setattr(console.settings, "json", True)
    url2 = server.add("/plain/other.bin", BLOB[:1000])
    fetch(url2, sha256=sha256(BLOB[:1000]))
    assert capsys.readouterr() == ("", "")


def test_416_with_a_stale_longer_partial_restarts_from_zero(server):
    """A partial longer than the file (left by another version): 416, then the whole file."""
    url = server.add("/shrunk.bin", BLOB)
    art = Artifact((url,), sha256=sha256(BLOB))
    part, meta = downloads._partial_paths(art)
    part.parent.mkdir(parents=True, exist_ok=True)
    part.write_bytes(b"y" * (len(BLOB) + 500))
    meta.write_text('{"url": "%s"}' % url)
    assert fetch(art).read_bytes() == BLOB
    first, second = server.requests_for("/shrunk.bin")
    assert first.status == 416 and first.range == f"bytes={len(BLOB) + 500}-"
    assert second.range is None and second.status == 200 and second.sent == len(BLOB)


def test_retry_after_as_an_http_date():
    import email.utils

    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= downloads.parse_retry_after(when) <= 31
    assert downloads.parse_retry_after("7") == 7.0
    assert downloads.parse_retry_after("soon") is None and downloads.parse_retry_after(None) is None


def test_an_unusable_cache_dir_is_one_clear_error(server, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("MOBILEBUILD_CACHE", str(blocker / "cache"))
    url = server.add("/c.bin", BLOB)
    with pytest.raises(DownloadError, match="cannot write to the download cache") as exc:
        fetch(url, sha256=sha256(BLOB))
    assert "MOBILEBUILD_CACHE" in exc.value.hint
    assert server.requests == []


def test_a_truncated_file_in_the_cache_is_healed(server, capsys):
    """A cached file cut short after it was stored (a full disk, a killed copy) is not trusted:
    it is found on the next use, deleted and fetched again."""
    data = make_tar_gz({"pkg/a.txt": BLOB[:50_000]})
    url = server.add("/t/pkg.tar.gz", data)
    path = fetch(url, sha256=sha256(data))
    with open(path, "r+b") as f:
        f.truncate(len(data) // 2)
    capsys.readouterr()
    stats = fetch_with_stats(url, sha256=sha256(data))
    assert stats.source == url  # fetched again, not served from the damaged copy
    assert stats.path.read_bytes() == data
    assert "in the download cache is damaged" in capsys.readouterr().err
    assert len(server.requests_for("/t/pkg.tar.gz")) == 2
    # verified once: the next use is a stat against the stamp, no network
    assert fetch_with_stats(url, sha256=sha256(data)).source is None
    assert len(server.requests_for("/t/pkg.tar.gz")) == 2


def test_a_cached_file_rewritten_with_other_bytes_is_healed(server):
    url = server.add("/t/blob.bin", BLOB)
    path = fetch(url, sha256=sha256(BLOB))
    path.write_bytes(os.urandom(len(BLOB)))  # same size, other content, new mtime
    assert fetch_with_stats(url, sha256=sha256(BLOB)).source == url
    assert path.read_bytes() == BLOB


def test_a_cached_file_without_stamp_is_verified_once(server):
    """Files stored before stamps existed (or whose stamp was lost) are verified, then stamped."""
    url = server.add("/t/old.bin", BLOB)
    path = fetch(url, sha256=sha256(BLOB))
    stamp = path.with_name(path.name + downloads.STAMP_SUFFIX)
    stamp.unlink()
    assert fetch_with_stats(url, sha256=sha256(BLOB)).source is None
    assert stamp.is_file()
    assert downloads.cache_size()[0] == 1  # the stamp is not counted as a download
