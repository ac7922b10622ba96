"""The one downloader: content-addressed cache, mirrors, retries, resume, digests, offline.

Every file mobilebuild fetches goes through ``fetch`` (or ``fetch_many`` for several in
parallel). A file is identified by its digest, as bazelisk and Bazel's repository cache do:
``cache_dir()/downloads/sha256/<digest>/<name>``; a second request for the same digest is
served from there without touching the network.

Sources are tried in order: every URL the artifact lists, then the user's mirrors (Bazel style:
``https://host/path`` -> ``BASE/host/path``; BASE may be a URL or a local directory). A source
that fails (HTTP error, HTML page, wrong digest) is recorded and the next one is tried; when
none works the error lists each source with its reason.

Transport: ``requests`` (so proxies from the environment and ``~/.netrc`` work as usual),
retries with exponential backoff and jitter on connection errors, 429 and 5xx (honouring
``Retry-After``), resume of a partial file with ``Range`` (+ ``If-Range`` when the server gave an
ETag or Last-Modified). The file is written under a temporary name, verified (size, sha256,
sha1, gzip integrity when no digest is known) and only then renamed into the cache.

Tunables (environment, mainly for tests and slow links): ``MOBILEBUILD_RETRIES`` (attempts per
source, default 4), ``MOBILEBUILD_RETRY_BASE`` (first backoff in seconds, default 1),
``MOBILEBUILD_RETRY_MAX`` (longest wait, default 60), ``MOBILEBUILD_HTTP_TIMEOUT`` (connect/read
timeout in seconds, default 30).
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import os
import random
import re
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence
from urllib.parse import unquote, urlsplit

import mobilebuild
from mobilebuild import console
from mobilebuild import errors
from mobilebuild.config import load_config
from mobilebuild.errors import ChecksumError, DownloadError
from mobilebuild.fsutil import exclusive_lock, mark_used
from mobilebuild.paths import cache_dir

CHUNK = 1 << 16
HTML_MARKERS = (b"<!doctype html", b"<html", b"<head>")


@dataclass(frozen=True)
class Artifact:
    """One file to fetch: where it may be found and what it must be."""

    urls: tuple[str, ...]
    sha256: str | None = None
    sha1: str | None = None
    size: int | None = None
    name: str | None = None  # file name in the cache (default: last part of the first URL)
    md5: str | None = None  # only where the publisher gives nothing better (Keras weight files)

    def __post_init__(self) -> None:
        if isinstance(self.urls, str):
            object.__setattr__(self, "urls", (self.urls,))
        else:
            object.__setattr__(self, "urls", tuple(self.urls))
        for attr, length in (("sha256", 64), ("sha1", 40), ("md5", 32)):
            value = getattr(self, attr)
            if value is not None:
                value = value.strip().lower()
                if not re.fullmatch(rf"[0-9a-f]{{{length}}}", value):
                    raise DownloadError(f"not a {attr} digest: {value!r}", f"a {attr} is {length} hex digits")
                object.__setattr__(self, attr, value)
        if not self.urls:
            raise DownloadError("an artifact needs at least one URL", "give a URL")

    @property
    def filename(self) -> str:
        if self.name:
            return self.name
        path = unquote(urlsplit(self.urls[0]).path) if "://" in self.urls[0] else self.urls[0]
        base = path.rstrip("/").rsplit("/", 1)[-1]
        return base or "download"

    @property
    def verified(self) -> bool:
        return bool(self.sha256 or self.sha1 or self.md5)

    def describe(self) -> str:
        if self.sha256:
            return f"sha256 {self.sha256}"
        if self.sha1:
            return f"sha1 {self.sha1}"
        if self.md5:
            return f"md5 {self.md5}"
        if self.size is not None:
            return f"size {self.size} B only (no digest known)"
        return "no digest"


@dataclass
class RetryPolicy:
    attempts: int = 4
    base: float = 1.0
    max_delay: float = 60.0
    timeout: float = 30.0

    @classmethod
    def from_env(cls) -> "RetryPolicy":
        def num(name: str, default: float) -> float:
            try:
                return float(os.environ.get(name, default))
            except ValueError:
                return default

        return cls(
            attempts=max(1, int(num("MOBILEBUILD_RETRIES", 4))),
            base=num("MOBILEBUILD_RETRY_BASE", 1.0),
            max_delay=num("MOBILEBUILD_RETRY_MAX", 60.0),
            timeout=num("MOBILEBUILD_HTTP_TIMEOUT", 30.0),
        )

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_delay))
        # Exponential backoff with "full jitter" spreads retries of parallel downloads apart.
        return min(self.max_delay, self.base * (2 ** (attempt - 1))) * (0.5 + random.random() / 2)


# ---------------------------------------------------------------------------- sources


def mirror_url(base: str, url: str) -> str:
    """Bazel-style mirror location of ``url`` under ``base``: https://host/p -> BASE/host/p."""
    parts = urlsplit(url)
    rel = parts.netloc + parts.path
    return base.rstrip("/") + "/" + rel.lstrip("/")


def is_local(source: str) -> bool:
    return "://" not in source or source.startswith("file://")


def local_path(source: str) -> Path:
    if source.startswith("file://"):
        return Path(unquote(urlsplit(source).path))
    return Path(source).expanduser()


def configured_mirrors() -> list[str]:
    """Mirrors listed in the project's mobilebuild.toml (none when there is no such file)."""

    # A broken mobilebuild.toml raises ConfigError (a UserError) here: better than ignoring it.
    return list(load_config().get("mirrors") or [])


def sources_for(art: Artifact, mirrors: Sequence[str] = ()) -> list[str]:
    """Every place the artifact may come from, in order: its URLs, then each mirror x URL."""
    out: list[str] = []
    for url in art.urls:
        if url not in out:
            out.append(url)
    for base in mirrors:
        for url in art.urls:
            if "://" not in url or url.startswith("file://"):
                continue
            cand = mirror_url(base, url)
            if cand not in out:
                out.append(cand)
    return out


# ---------------------------------------------------------------------------- cache layout


def downloads_root() -> Path:
    return cache_dir() / "downloads"


def cache_path(art: Artifact) -> Path:
    """Where the verified file lives: keyed by sha256, else sha1, else (unverified) by URL."""
    if art.sha256:
        key = Path("sha256") / art.sha256
    elif art.sha1:
        key = Path("sha1") / art.sha1
    elif art.md5:
        key = Path("md5") / art.md5
    else:
        key = Path("by-url") / hashlib.sha256(art.urls[0].encode()).hexdigest()[:32]
    return downloads_root() / key / art.filename


STAMP_SUFFIX = ".verified"


def _stamp_path(p: Path) -> Path:
    return p.with_name(p.name + STAMP_SUFFIX)


def _stamp_key(p: Path, art: Artifact) -> dict[str, Any]:
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": art.sha256, "sha1": art.sha1}


def _write_stamp(p: Path, art: Artifact) -> None:
    with contextlib.suppress(OSError):  # no stamp only means the next use verifies again
        _stamp_path(p).write_text(json.dumps(_stamp_key(p, art)))


def cached(art: Artifact) -> Path | None:
    """The cached file when present and still the artifact; a damaged one is deleted (healed).

    A file is verified in full (digest, size, gzip integrity) the first time it is used after it
    was stored or touched; a stamp beside it records size and mtime of that verified state, so
    later uses cost one stat. A file truncated or rewritten since (a full disk, a killed copy,
    a hand edit) no longer matches its stamp and is verified again.
    """
    p = cache_path(art)
    if not p.is_file():
        return None
    try:
        key = _stamp_key(p, art)
        if _load_meta(_stamp_path(p)) == key:
            mark_used(p.parent)
            return p
        verify(p, art, "the download cache")
    except ChecksumError as exc:
        console.warn(f"{art.filename} in the download cache is damaged ({exc.message.split(': ', 1)[-1]}); fetching it again")
        p.unlink(missing_ok=True)
        _stamp_path(p).unlink(missing_ok=True)
        return None
    except OSError:
        return None
    _write_stamp(p, art)
    mark_used(p.parent)
    return p


def _partial_paths(art: Artifact) -> tuple[Path, Path]:
    final = cache_path(art)
    part_dir = downloads_root() / "partial"
    key = final.parent.name[:32]
    return part_dir / f"{key}-{art.filename}.part", part_dir / f"{key}-{art.filename}.json"


# ---------------------------------------------------------------------------- verification


def file_digests(path: Path) -> dict[str, str]:
    h256, h1, h5 = hashlib.sha256(), hashlib.sha1(), hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h256.update(chunk)
            h1.update(chunk)
            h5.update(chunk)
    return {"sha256": h256.hexdigest(), "sha1": h1.hexdigest(), "md5": h5.hexdigest()}


def _gzip_complete(path: Path) -> bool:
    """True when the gzip stream in ``path`` ends properly (a cut-off download does not)."""
    d = zlib.decompressobj(wbits=47)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            try:
                d.decompress(chunk)
            except zlib.error:
                return False
            while d.eof and d.unused_data:  # concatenated members
                rest = d.unused_data
                d = zlib.decompressobj(wbits=47)
                try:
                    d.decompress(rest)
                except zlib.error:
                    return False
    return d.eof


def _is_gzip_name(name: str) -> bool:
    return name.endswith((".gz", ".tgz"))


def verify(path: Path, art: Artifact, source: str) -> None:
    """Raise ChecksumError (the caller deletes the file) when ``path`` is not the artifact."""
    size = path.stat().st_size
    if art.size is not None and size != art.size:
        raise ChecksumError(
            f"size mismatch for {art.filename} from {source}: expected {art.size} bytes, got {size}",
            "the server sent something else; the file was deleted — try again or use another mirror",
        )
    if art.sha256 or art.sha1 or art.md5:
        digests = file_digests(path)
        for algo in ("sha256", "sha1", "md5"):
            want = getattr(art, algo)
            if want and digests[algo] != want:
                raise ChecksumError(
                    f"{algo} mismatch for {art.filename} from {source}: expected {want}, got {digests[algo]}",
                    "the file was deleted; the source serves different content — use another mirror, "
                    "or check the pinned digest",
                )
    elif _is_gzip_name(art.filename) and not _gzip_complete(path):
        raise ChecksumError(
            f"truncated gzip: {art.filename} from {source} ends before its gzip stream does",
            "the download was cut off; try again",
        )


# ---------------------------------------------------------------------------- transport


class _Retry(Exception):
    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.retry_after = retry_after


class _SourceFailed(Exception):
    """This source cannot give the file (do not retry it; try the next one)."""


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


_local = threading.local()


def _session():
    import requests

    s = getattr(_local, "session", None)
    if s is None:
        s = requests.Session()
        s.headers["User-Agent"] = f"mobilebuild/{mobilebuild.__version__}"
        _local.session = s
    return s


def _load_meta(meta_path: Path) -> dict[str, Any]:
    try:
        return json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return {}


def _check_stop(stop: threading.Event | None) -> None:
    """Between chunks: Ctrl-C (or the caller's stop event) ends this download; the partial file
    stays for a resume."""
    if stop is not None and stop.is_set():
        raise KeyboardInterrupt
    errors.check_cancelled()


def _http_attempt(url: str, part: Path, meta_path: Path, art: Artifact, policy: RetryPolicy, on_bytes: Callable[[int, int | None], None], stop: threading.Event | None = None) -> None:
    """One HTTP request: resume when a partial file from this URL exists."""
    import requests

    meta = _load_meta(meta_path)
    have = part.stat().st_size if part.exists() else 0
    if have and meta.get("url") != url:
        have = 0  # a partial from another source: its validators mean nothing here
    headers = {"Accept-Encoding": "identity"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    try:
        resp = _session().get(url, headers=headers, stream=True, timeout=(policy.timeout, policy.timeout), allow_redirects=True)
    except (requests.ConnectionError, requests.Timeout) as exc:
        if _is_name_resolution_error(exc):
            # An unknown host does not appear by retrying: go to the next source at once.
            raise _SourceFailed(f"host not found: {urlsplit(url).hostname}") from exc
        raise _Retry(f"connection failed: {_short(exc)}") from exc
    except requests.RequestException as exc:
        raise _SourceFailed(f"request failed: {_short(exc)}") from exc
    with resp:
        code = resp.status_code
        if code == 416:
            total = _content_range_total(resp.headers.get("Content-Range"))
            if have and total == have:
                return  # the partial file is already complete
            part.unlink(missing_ok=True)
            raise _Retry("416 range not satisfiable: restarting from the beginning", retry_after=0)
        if code == 429 or code >= 500:
            raise _Retry(f"HTTP {code}", parse_retry_after(resp.headers.get("Retry-After")))
        if code >= 400:
            raise _SourceFailed(f"HTTP {code}")
        ctype = resp.headers.get("Content-Type", "").lower()
        if "text/html" in ctype and not art.filename.lower().endswith((".html", ".htm")):
            raise _SourceFailed(f"got an HTML page (HTTP {code}, Content-Type {ctype}), not the file")
        offset = 0
        if code == 206:
            start = _content_range_start(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink(missing_ok=True)
                raise _Retry(f"server resumed at byte {start}, not {have}: restarting", retry_after=0)
            offset = have
        length = resp.headers.get("Content-Length")
        expected = int(length) if length and length.isdigit() else None
        total = offset + expected if expected is not None else art.size
        meta_path.write_text(json.dumps({"url": url, "etag": resp.headers.get("ETag"), "last_modified": resp.headers.get("Last-Modified")}))
        got = 0
        on_bytes(offset, total)
        # urllib3 would discard the bytes of a short read when it enforces Content-Length;
        # we count ourselves below, so every byte received is kept for the resume.
        if hasattr(resp.raw, "enforce_content_length"):
            resp.raw.enforce_content_length = False
        with open(part, "ab" if offset else "wb") as out:
            try:
                for chunk in resp.iter_content(CHUNK):
                    _check_stop(stop)
                    if not chunk:
                        continue
                    if offset == 0 and got == 0 and chunk.lstrip()[:16].lower().startswith(HTML_MARKERS) and not art.filename.lower().endswith((".html", ".htm", ".xml")):
                        raise _SourceFailed(f"got an HTML page (HTTP {code}), not the file")
                    out.write(chunk)
                    got += len(chunk)
                    on_bytes(offset + got, total)
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError, requests.Timeout) as exc:
                out.flush()
                raise _Retry(f"connection dropped after {offset + got} bytes: {_short(exc)}") from exc
        if expected is not None and got < expected:
            raise _Retry(f"body shorter than Content-Length ({got} of {expected} bytes)")


def _is_name_resolution_error(exc: BaseException) -> bool:
    text = repr(exc)
    return any(m in text for m in ("NameResolutionError", "Name or service not known", "nodename nor servname", "getaddrinfo failed", "No address associated"))


def _content_range_total(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(?:\*|\d+-\d+)/(\d+)", value or "")
    return int(m.group(1)) if m else None


def _content_range_start(value: str | None) -> int | None:
    m = re.match(r"bytes\s+(\d+)-", value or "")
    return int(m.group(1)) if m else None


def _short(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) < 160 else text[:157] + "..."


def _download_http(url: str, part: Path, meta_path: Path, art: Artifact, policy: RetryPolicy, on_bytes, stop: threading.Event | None = None) -> None:
    attempt = 0
    while True:
        attempt += 1
        _check_stop(stop)
        try:
            _http_attempt(url, part, meta_path, art, policy, on_bytes, stop)
            return
        except _Retry as exc:
            if attempt >= policy.attempts:
                raise _SourceFailed(f"{exc} (gave up after {attempt} attempts)") from exc
            wait = policy.delay(attempt, exc.retry_after)
            console.detail(f"{art.filename}: {exc}; retrying in {wait:.1f} s ({url})")
            (stop or errors.CANCELLED).wait(wait)


def _copy_local(src: Path, part: Path, on_bytes, stop: threading.Event | None = None) -> None:
    if not src.is_file():
        raise _SourceFailed("not found")
    total = src.stat().st_size
    done = 0
    try:
        fi = open(src, "rb")
    except OSError as exc:  # an unreadable mirror file: the next source may do
        raise _SourceFailed(f"cannot read: {exc.strerror or exc}") from exc
    with fi, open(part, "wb") as fo:
        for chunk in iter(lambda: fi.read(1 << 20), b""):
            _check_stop(stop)
            fo.write(chunk)
            done += len(chunk)
            on_bytes(done, total)


# ---------------------------------------------------------------------------- public API


@dataclass
class FetchStats:
    """What happened, for reports and tests: where it came from and whether the net was used."""

    path: Path
    source: str | None  # None: served from the cache
    failures: list[tuple[str, str]] = field(default_factory=list)


def as_artifact(spec: Artifact | str | Sequence[str], sha256: str | None = None, sha1: str | None = None, size: int | None = None, name: str | None = None) -> Artifact:
    if isinstance(spec, Artifact):
        return spec
    if isinstance(spec, (str, os.PathLike)):
        urls: tuple[str, ...] = (str(spec),)
    else:
        urls = tuple(str(u) for u in spec)
    return Artifact(urls=urls, sha256=sha256, sha1=sha1, size=size, name=name)


def fetch(spec: Artifact | str | Sequence[str], **options: Any) -> Path:
    """The path of the verified file in the cache, downloading it when needed (``options``
    as for ``fetch_with_stats``)."""
    return fetch_with_stats(spec, **options).path


def fetch_with_stats(
    spec: Artifact | str | Sequence[str],
    *,
    sha256: str | None = None,
    sha1: str | None = None,
    size: int | None = None,
    name: str | None = None,
    mirrors: Iterable[str] = (),
    offline: bool = False,
    allow_unverified: bool = False,
    use_config_mirrors: bool = True,
    progress: Any = None,
    stop: threading.Event | None = None,
) -> FetchStats:
    art = as_artifact(spec, sha256, sha1, size, name)
    if not art.verified and art.size is None and not allow_unverified:
        raise DownloadError(
            f"no sha256, sha1 or size known for {art.filename} ({art.urls[0]})",
            "refusing to use an unverified download: give its digest (e.g. --sha256 DIGEST)",
        )
    hit = cached(art)
    if hit:
        console.detail(f"{art.filename}: from the cache ({hit})")
        return FetchStats(hit, None)
    all_mirrors = list(mirrors) + (configured_mirrors() if use_config_mirrors else [])
    sources = sources_for(art, list(dict.fromkeys(all_mirrors)))
    if offline:
        sources = [s for s in sources if is_local(s)]
        if not sources:
            raise DownloadError(
                f"offline: {art.filename} is not in the cache ({art.describe()})",
                f"run once without --offline, or put the file in a local mirror as BASE/{mirror_url('', art.urls[0]).lstrip('/')} and pass --mirror BASE",
            )
    final = cache_path(art)
    part, meta_path = _partial_paths(art)
    _writable_dir(part.parent)
    policy = RetryPolicy.from_env()
    failures: list[tuple[str, str]] = []
    with exclusive_lock(part.with_suffix(".lock")), _Progress(progress, art) as bar, errors.on_interrupt(_resume_note()):
        hit = cached(art)  # another process may have finished it while we waited
        if hit:
            return FetchStats(hit, None)
        for src in sources:
            try:
                if is_local(src):
                    part.unlink(missing_ok=True)
                    _copy_local(local_path(src), part, bar.update, stop)
                else:
                    console.detail(f"GET {src}")
                    _download_http(src, part, meta_path, art, policy, bar.update, stop)
                verify(part, art, src)
            except _SourceFailed as exc:
                failures.append((src, str(exc)))
                console.detail(f"{art.filename}: {src}: {exc}")
                if not _resumable(part, meta_path, src):
                    part.unlink(missing_ok=True)
                continue
            except ChecksumError as exc:
                part.unlink(missing_ok=True)
                meta_path.unlink(missing_ok=True)
                failures.append((src, exc.message))
                console.warn(exc.message)
                continue
            except OSError as exc:
                if exc.errno is None:
                    raise  # requests' own errors are OSErrors too: not a file-system failure
                # Writing into the cache failed (disk full, quota): no other source helps.
                part.unlink(missing_ok=True)
                raise DownloadError(
                    f"cannot write {art.filename} into the download cache {downloads_root()}: {exc.strerror or exc}",
                    "free some disk space, or set MOBILEBUILD_CACHE to a directory with room",
                ) from exc
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(part, final)
            meta_path.unlink(missing_ok=True)
            _write_stamp(final, art)
            if not art.verified:
                console.warn(f"{art.filename}: verified by {'size' if art.size is not None else 'nothing'} only ({art.describe()})")
            bar.done(final, src)
            return FetchStats(final, src, failures)
    raise _all_failed(art, failures, offline)


def _resume_note() -> str:
    return f"unfinished downloads are kept in {downloads_root() / 'partial'}; the next run resumes them"


def _writable_dir(d: Path) -> None:
    try:
        d.mkdir(parents=True, exist_ok=True)
        if not os.access(d, os.W_OK):
            raise PermissionError(13, "permission denied")
    except OSError as exc:
        raise DownloadError(
            f"cannot write to the download cache {downloads_root()}: {exc.strerror or exc}",
            "set MOBILEBUILD_CACHE to a writable directory",
        ) from exc


def _resumable(part: Path, meta_path: Path, src: str) -> bool:
    """Keep a partial body from a dropped connection for a later resume of the same URL."""
    return part.exists() and part.stat().st_size > 0 and _load_meta(meta_path).get("url") == src


def _all_failed(art: Artifact, failures: list[tuple[str, str]], offline: bool) -> DownloadError:
    checksum = [f for f in failures if "mismatch" in f[1] or "truncated gzip" in f[1]]
    if checksum:
        # Content that is not the pinned file is the headline: it may be an attack.
        others = "; ".join(f"{src}: {why}" for src, why in failures if (src, why) not in checksum)
        return ChecksumError(
            "; ".join(why for _, why in checksum) + (f" (other sources: {others})" if others else ""),
            "the file was deleted; use another mirror (--mirror BASE) or check the pinned digest",
        )
    lines = "; ".join(f"{src}: {why}" for src, why in failures)
    where = "offline: no local mirror has" if offline else "could not download"
    return DownloadError(
        f"{where} {art.filename} ({art.describe()}): {lines}",
        "check the network/proxy (HTTPS_PROXY), or add a mirror with --mirror BASE (BASE/host/path layout)",
    )


class _Progress:
    """A rich progress task per file when interactive; a plain line per finished file otherwise."""

    _lock = threading.Lock()

    def __init__(self, shared, art: Artifact):
        self.shared = shared
        self.art = art
        self.own = None
        self.task = None

    def __enter__(self):
        prog = self.shared
        if prog is None and console.is_interactive():
            self.own = prog = console.progress(transient=True)
            prog.start()
        if prog is not None:
            with self._lock:
                self.task = prog.add_task(self.art.filename, total=self.art.size)
        self.prog = prog
        return self

    def update(self, done: int, total: int | None) -> None:
        if self.prog is not None and self.task is not None:
            self.prog.update(self.task, completed=done, total=total)

    def done(self, path: Path, src: str) -> None:
        if not console.settings.json:
            console.info(f"downloaded {self.art.filename} ({console.size(path.stat().st_size)}) from {urlsplit(src).netloc or src}")

    def __exit__(self, *exc):
        if self.prog is not None and self.task is not None:
            with contextlib.suppress(Exception):
                self.prog.remove_task(self.task)
        if self.own is not None:
            self.own.stop()
        return False


def fetch_many(
    items: Sequence[Artifact | tuple],
    jobs: int = 4,
    *,
    mirrors: Iterable[str] = (),
    offline: bool = False,
    allow_unverified: bool = False,
    use_config_mirrors: bool = True,
) -> list[Path]:
    """Fetch several artifacts, at most ``jobs`` at a time; paths in the order given.

    Every item is attempted; when any fails, one DownloadError lists all failures (with
    ``offline`` that is exactly the list of what is missing from the cache).
    """
    arts = [it if isinstance(it, Artifact) else as_artifact(*it) for it in items]
    # mobilebuild.toml is read once here, not once per artifact inside fetch.
    mirrors = list(mirrors) + (configured_mirrors() if use_config_mirrors else [])
    results: list[Path | None] = [None] * len(arts)
    failed: list[tuple[Artifact, DownloadError]] = []
    crashed: list[BaseException] = []
    shared = console.progress() if console.is_interactive() else None
    # Daemon workers pulling from one queue, not a ThreadPoolExecutor: on Ctrl-C the main thread
    # must not wait for a worker stuck in a read of a hung server (the executor joins its
    # threads, at shutdown and again at interpreter exit). Workers stop at their next chunk.
    stop = threading.Event()
    todo = iter(range(len(arts)))
    take = threading.Lock()

    def worker() -> None:
        while not stop.is_set():
            with take:
                i = next(todo, None)
            if i is None:
                return
            try:
                results[i] = fetch(arts[i], mirrors=mirrors, offline=offline, allow_unverified=allow_unverified,
                                   use_config_mirrors=False, progress=shared, stop=stop)
            except DownloadError as exc:
                failed.append((arts[i], exc))
            except KeyboardInterrupt:
                return
            except BaseException as exc:  # a bug or a write failure: stop the others, report it
                crashed.append(exc)
                stop.set()
                return

    note = _resume_note()
    threads = [threading.Thread(target=worker, name=f"download-{n}", daemon=True) for n in range(max(1, min(jobs, len(arts))))]
    with (shared if shared is not None else contextlib.nullcontext()), errors.on_interrupt(note):
        try:
            for t in threads:
                t.start()
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except BaseException:
            stop.set()
            raise
    if crashed:
        raise crashed[0]
    if failed:
        if len(failed) == 1:
            raise failed[0][1]
        missing = "; ".join(exc.message for _, exc in failed)
        raise DownloadError(f"{len(failed)} of {len(arts)} downloads failed: {missing}", failed[0][1].hint)
    return [p for p in results if p is not None]


def cache_size() -> tuple[int, int, int]:
    """(verified files, their bytes, bytes of unfinished downloads kept for a resume)."""
    root = downloads_root()
    count = total = partial = 0
    if root.is_dir():
        for dirpath, _dirs, files in os.walk(root):
            in_partial = Path(dirpath) == root / "partial"
            for f in files:
                if in_partial and f.endswith(".lock"):
                    continue  # a lock holds only the pid of the last fetch, not download data
                if not in_partial and f.endswith(STAMP_SUFFIX):
                    continue  # a note that the file beside it was verified, not a download
                with contextlib.suppress(OSError):
                    size = os.lstat(os.path.join(dirpath, f)).st_size
                    if in_partial:
                        partial += size  # .part bodies and their .json notes
                    else:
                        total += size
                        count += 1
    return count, total, partial
