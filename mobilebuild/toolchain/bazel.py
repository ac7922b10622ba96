"""Knowledge of Bazel: which binary to run, its flags, running a build, reading its output.

Resolution order (``resolve_bazel``): an explicit ``--bazel PATH``; the ``bazel`` recorded in
mobilebuild.toml (by ``mobilebuild setup``); bazelisk on PATH (the version from
``USE_BAZEL_VERSION``, the tree's ``.bazelversion`` or the profile's pin); a Bazel that
``mobilebuild setup`` installed into the managed prefix (the ``.bazelversion`` version, else the
pin); a ``bazel`` on PATH. Every binary
but bazelisk's is checked against the profile's ``bazel.min``/``bazel.max``; the user can
deliberately override that check (a warning stays in the output) because no Bazel of
TensorFlow 1.x's era runs on a current system.

``build`` streams Bazel's output through the runner into a status line (or raw with
``--verbose``), keeps the full log, parses Bazel's closing summary for action counts and remote
cache hits, and turns a failure into a short error (first error lines + log path).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, Sequence
from urllib.parse import urlparse

from mobilebuild import console, errors, runner, versions
from mobilebuild.config import load_config
from mobilebuild.errors import CommandError, ToolchainError, UserError
from mobilebuild.fsutil import atomic_write_text, write_if_changed
from mobilebuild.paths import cache_dir, data_dir, new_log_path
from mobilebuild.profiles import Profile
from mobilebuild.templating import render
from mobilebuild.versions import version_str

BAZELRC_NAME = "mobilebuild.bazelrc"
# Remote endpoints Bazel understands: HTTP caches, gRPC (REAPI) caches/executors, unix sockets.
CACHE_SCHEMES = ("http", "https", "grpc", "grpcs", "unix")
EXECUTOR_SCHEMES = ("grpc", "grpcs", "unix")


@dataclass(frozen=True)
class Bazel:
    """A Bazel ready to run: ``path`` plus the ``env`` it needs (bazelisk's version pin)."""

    path: str
    version: tuple[int, ...] | None
    via: str  # 'bazelisk' | 'path' | 'flag' | 'managed'
    env: dict[str, str] = field(default_factory=dict)
    # Startup options put before the command on every call (e.g. --output_user_root in CI).
    startup_options: tuple[str, ...] = ()
    # Warnings produced while resolving (version check overridden, unknown version, ...).
    warnings: tuple[str, ...] = ()

    @property
    def version_text(self) -> str:
        return version_str(self.version) if self.version else "unknown"


@dataclass
class BuildResult:
    log_path: Path
    seconds: float
    actions: int | None  # "N total actions" (None: this Bazel does not print it)
    remote_cache_hits: int
    no_op: bool  # Bazel executed nothing (every output already up to date)
    processes: dict[str, int] = field(default_factory=dict)  # strategy -> count, from the summary
    # remote cache hits / cacheable processes (None: nothing cacheable ran, or no summary line)
    remote_cache_hit_ratio: float | None = None
    warnings: list[str] = field(default_factory=list)
    argv: list[str] = field(default_factory=list)
    # The files Bazel reported for the target ("Target //x:y up-to-date:" lines), as printed.
    outputs: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "log": str(self.log_path),
            "seconds": round(self.seconds, 3),
            "actions": self.actions,
            "remote_cache_hits": self.remote_cache_hits,
            "remote_cache_hit_ratio": self.remote_cache_hit_ratio,
            "no_op": self.no_op,
            "processes": self.processes,
            "warnings": self.warnings,
            "outputs": self.outputs,
        }


# ---- resolving ---------------------------------------------------------------------------------


def resolve_bazel(
    profile: Profile,
    *,
    bazel_path: str | os.PathLike | None = None,
    tree: str | os.PathLike | None = None,
    allow_any_version: bool = False,
    conf: dict | None = None,
) -> Bazel:
    """The Bazel to use for ``profile`` (see the module doc for the order). ``conf``: the
    command's mobilebuild.toml settings; None reads the file found from the tree, else the cwd."""
    lo, hi, pin = _pins(profile)
    if bazel_path is not None:
        path = Path(bazel_path).expanduser()
        if not runner.is_executable(path):
            raise ToolchainError(
                f"--bazel {path} is not an executable file",
                "give the path of a bazel binary (e.g. --bazel ~/bin/bazel-0.5.4)",
            )
        return _checked(str(path.resolve()), "flag", profile, allow_any_version, tree)

    # What `mobilebuild setup` recorded for this project wins over a search.
    configured = configured_exe(conf.get("bazel")) if conf is not None else _configured_bazel(tree)
    for path, via in bazel_candidates(profile, tree, configured):
        if via == "bazelisk":
            wanted, source = _bazelisk_version(tree, pin)
            bz = Bazel(path, _parse_or_none(wanted), "bazelisk", {"USE_BAZEL_VERSION": wanted})
            console.detail(f"bazel: bazelisk {path} with Bazel {wanted} (from {source})")
            return _check_range(bz, profile, allow_any_version, lo, hi, pin)
        return _checked(path, via, profile, allow_any_version, tree)

    raise ToolchainError(
        "no Bazel found (neither bazelisk nor bazel on PATH, nor one installed by mobilebuild)",
        f"run `mobilebuild setup` to install Bazel {pin or lo}, install bazelisk, or pass --bazel PATH",
    )


def bazel_candidates(profile: Profile, tree=None, configured: str | None = None) -> Iterator[tuple[str, str]]:
    """(path, via) of every Bazel there is, in the order of the module doc: ``resolve_bazel``
    uses the first, ``machine.find_bazel`` (doctor, setup) the first usable one. ``configured``
    is mobilebuild.toml's ``bazel`` as an executable (``configured_exe``); via is
    'mobilebuild.toml' | 'bazelisk' | 'managed' | 'path'."""
    if configured is not None:
        yield configured, "bazelisk" if _is_bazelisk(configured) else "mobilebuild.toml"
    if configured is None or not _is_bazelisk(configured):
        bazelisk = runner.which("bazelisk")
        if bazelisk:
            yield bazelisk, "bazelisk"
    # setup installs the version the tree's .bazelversion asks for, else the profile's pin.
    wanted = bazelversion_file(tree) or profile.get("bazel.recommended")
    managed = managed_bazel_path(wanted) if wanted else None
    if managed is not None and runner.is_executable(managed):
        yield str(managed), "managed"
    on_path = runner.which("bazel")
    if on_path:
        yield on_path, "path"


def _is_bazelisk(path: str) -> bool:
    return Path(path).name.startswith("bazelisk")


def managed_bazel_path(version: str) -> Path:
    """Where ``mobilebuild setup`` puts Bazel VERSION: DATA/bazel/VERSION/bin/bazel."""

    return data_dir() / "bazel" / version / "bin" / "bazel"


def probe_version(path: str, cwd: str | os.PathLike | None = None) -> tuple[tuple[int, ...] | None, str]:
    """(version, what the binary reported). ``bazel --version`` is answered by the client
    without starting a server (run in ``cwd``, the tree, so a bazelisk installed as ``bazel``
    honours its ``.bazelversion``). One ``mobilebuild setup`` installed says its version in the
    VERSION file beside it. Other Bazels older than that flag (0.4/0.5) answer ``--batch
    version`` ("Build label: 0.5.4"), which starts a JVM each time: that answer is remembered per
    binary (path, size, mtime) in the cache dir, so a re-run does not pay for it again."""
    res = runner.run([path, "--version"], cwd=cwd, check=False, timeout=120)
    m = re.search(r"^bazel\s+(\S+)", res.output, re.M)
    if res.returncode == 0 and m and _parse_or_none(m.group(1)) is not None:
        return _parse_or_none(m.group(1)), m.group(1)
    # `mobilebuild setup` records the version next to what it installs (PREFIX/VERSION beside
    # PREFIX/bin/bazel; not resolved: an installer's bin/bazel links into lib/bazel/bin).
    marker = Path(path).parent.parent / "VERSION"
    if marker.is_file():
        recorded = marker.read_text(errors="replace").strip()
        if _parse_or_none(recorded) is not None:
            return _parse_or_none(recorded), recorded
    if res.returncode == 0 and m:
        return None, m.group(1)  # e.g. Debian's bootstrap build: "bazel no_version"
    key, stamp = _probe_key(path)
    cached = _probe_cache().get(key)
    if stamp is not None and isinstance(cached, dict) and cached.get("stamp") == stamp:
        reported = str(cached.get("reported", ""))
        return _parse_or_none(reported), reported
    res = runner.run([path, "--batch", "version"], check=False, timeout=300)
    m = re.search(r"^Build label:\s*(\S*)", res.output, re.M)
    if not m:
        raise ToolchainError(
            f"{path} does not answer like Bazel (`--version` exited {res.returncode})",
            "check that the path is a Bazel binary; `--bazel PATH` must name the binary itself",
        )
    reported = m.group(1) or "(empty build label)"
    # A bazelisk under another name picks its Bazel per tree: nothing to remember per binary.
    if stamp is not None and "bazelisk" not in os.path.basename(key):
        _remember_probe(key, stamp, reported)
    return _parse_or_none(m.group(1)), reported


_PROBE_CACHE = "bazel-versions.json"


def _probe_key(path: str) -> tuple[str, list[int] | None]:
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return real, None
    return real, [st.st_size, st.st_mtime_ns]


def _probe_cache() -> dict:


    try:
        data = json.loads((cache_dir() / _PROBE_CACHE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _remember_probe(key: str, stamp: list[int], reported: str) -> None:


    data = _probe_cache()
    data[key] = {"stamp": stamp, "reported": reported}
    try:
        cache_dir().mkdir(parents=True, exist_ok=True)
        write_if_changed(cache_dir() / _PROBE_CACHE, json.dumps(data, indent=1, sort_keys=True) + "\n")
    except OSError:
        pass  # only a speed-up: a read-only cache dir just means asking again next time


def _checked(path: str, via: str, profile: Profile, allow_any_version: bool, tree=None) -> Bazel:
    version, reported = probe_version(path, cwd=tree)
    lo, hi, pin = _pins(profile)
    bz = Bazel(path, version, via)
    if version is None:
        msg = f"cannot tell which Bazel {path} is (it reports version '{reported}')"
        if not allow_any_version:
            raise ToolchainError(
                msg,
                f"TensorFlow {profile.version_text} needs Bazel {lo} - {hi}: run `mobilebuild setup`, "
                "or add --ignore-bazel-version to use this one anyway",
            )
        return _warn(bz, msg + "; using it because the version check was overridden")
    return _check_range(bz, profile, allow_any_version, lo, hi, pin)


def _check_range(bz: Bazel, profile: Profile, allow: bool, lo: str | None, hi: str | None, pin: str | None) -> Bazel:
    if bz.version is None or (lo is None and hi is None):
        return bz
    too_old = lo is not None and versions.older_than(bz.version, lo)
    too_new = hi is not None and versions.older_than(hi, bz.version)
    if not (too_old or too_new):
        return bz
    msg = (
        f"Bazel {bz.version_text} ({bz.path}) is outside the range TensorFlow "
        f"{profile.version_text} builds with ({lo or 'any'} - {hi or 'any'})"
    )
    if not allow:
        raise ToolchainError(
            msg,
            f"install Bazel {pin or lo} (`mobilebuild setup`, or bazelisk with USE_BAZEL_VERSION={pin or lo}); "
            "to try this one anyway add --ignore-bazel-version",
        )
    return _warn(bz, msg + "; using it because the version check was overridden")


def _warn(bz: Bazel, message: str) -> Bazel:
    console.warn(message)
    return Bazel(bz.path, bz.version, bz.via, dict(bz.env), bz.startup_options, bz.warnings + (message,))


def _pins(profile: Profile) -> tuple[str | None, str | None, str | None]:
    # An empty min/max is no limit (trees whose configure.py enforces none).
    return profile.get("bazel.min") or None, profile.get("bazel.max") or None, profile.get("bazel.recommended")


def _configured_bazel(tree) -> str | None:
    """The ``bazel`` of mobilebuild.toml (found from the tree, else the working dir)."""

    value = load_config(tree).get("bazel") if tree is not None else None
    return configured_exe(value or load_config().get("bazel"))


def configured_exe(value) -> str | None:
    """A configured ``bazel`` value (path or name on PATH) as an executable; a stale entry is
    ignored with a warning rather than failing the build."""
    if not value:
        return None
    exe = str(value) if "/" in str(value) else runner.which(str(value))
    if exe and runner.is_executable(exe):
        return exe
    console.warn(f"mobilebuild.toml names bazel = {value}, which is not an executable; looking elsewhere")
    return None


def bazelversion_file(tree) -> str | None:
    """The first line of ``TREE/.bazelversion`` (None: no tree, no file, empty)."""
    if tree is None:
        return None
    f = Path(tree) / ".bazelversion"
    if f.is_file():
        text = f.read_text(errors="replace").strip().splitlines()
        if text and text[0].strip():
            return text[0].strip()
    return None


def _bazelisk_version(tree, pin: str | None) -> tuple[str, str]:
    env = os.environ.get("USE_BAZEL_VERSION", "").strip()
    if env:
        return env, "USE_BAZEL_VERSION"
    from_file = bazelversion_file(tree)
    if from_file:
        return from_file, str(Path(tree) / ".bazelversion")
    if pin:
        return pin, "the version profile"
    raise ToolchainError(
        "bazelisk found but no Bazel version to ask it for",
        "set USE_BAZEL_VERSION or write the version into the tree's .bazelversion",
    )


def _parse_or_none(text: str) -> tuple[int, ...] | None:
    return versions.release(text) if versions.parse(text or None) is not None else None


# ---- flags -------------------------------------------------------------------------------------


def cpu_flags(profile: Profile, cpu: str | None) -> list[str]:
    """The Bazel flags for ``--cpu`` (profile ``android.cpu_flags``; None: the profile default)."""
    table: dict = profile.require("android.cpu_flags")
    if cpu is None:
        cpu = profile.get("android.default_cpu") or next(iter(table))
    if cpu not in table:
        raise UserError(
            f"unknown --cpu {cpu!r} for TensorFlow {profile.version_text}",
            "use one of: " + ", ".join(table),
        )
    return list(table[cpu])


def locate_apk(tree: str | os.PathLike, profile: Profile, reported: Sequence[str] = ()) -> Path:
    """The APK Bazel built: the file of that name Bazel reported for the target (``reported``,
    from ``BuildResult.outputs``; a ``--symlink_prefix`` moves bazel-bin), else where the profile
    says (``android.apk``, relative to the tree)."""
    rel = profile.require("android.apk")
    name = Path(rel).name
    for out in reported:
        candidate = Path(tree) / out  # absolute paths stay absolute
        if candidate.name == name and candidate.is_file():
            return candidate
    apk = Path(tree) / rel
    if apk.is_file():
        return apk
    said = f"; Bazel reported: {', '.join(reported)}" if reported else ""
    raise UserError(
        f"Bazel finished but there is no APK at {apk}{said}",
        f"the profile expects {rel} (target {profile.get('android.bazel_target')}); check the tree's "
        "BUILD file and that no --symlink_prefix in your .bazelrc moves bazel-bin",
    )


# ---- remote cache / executor -------------------------------------------------------------------


def remote_options(
    remote_cache: str | None = None,
    remote_executor: str | None = None,
    remote_headers: Iterable[str] = (),
    upload_local_results: bool = True,
    *,
    bazel_version: tuple[int, ...] | None = None,
) -> list[str]:
    """The Bazel flags for the remote settings ([]: nothing to share); bad values raise UserError.

    ``bazel_version`` (the resolved Bazel's, when known) picks the flag names that Bazel knows:
    ``--remote_cache=URL`` takes http(s) URLs from 0.25 on; 0.10 - 0.24 call the HTTP cache
    ``--remote_http_cache`` (and before 0.15 also need the ``remote`` strategies). Called before
    anything is patched, so a setting the Bazel cannot use fails early.
    """
    headers = [check_remote_header(h) for h in remote_headers]
    if not remote_cache and not remote_executor:
        if headers:
            raise UserError(
                "--remote-header given without --remote-cache or --remote-executor",
                "headers are sent to a remote service: add --remote-cache URL or --remote-executor URL",
            )
        return []
    options: list[str] = []
    if remote_cache:
        url = check_remote_url(remote_cache, "--remote-cache", CACHE_SCHEMES)
        options += _cache_options(url, bazel_version)
    if remote_executor:
        url = check_remote_url(remote_executor, "--remote-executor", EXECUTOR_SCHEMES)
        if bazel_version is not None and versions.older_than(bazel_version, MODERN_REMOTE):
            raise UserError(
                f"--remote-executor needs Bazel {version_str(MODERN_REMOTE)} or newer (this is {version_str(bazel_version)})",
                "use a newer Bazel (--bazel PATH --ignore-bazel-version) or give your Bazel's own flags with --bazel-arg",
            )
        options.append("--remote_executor=" + _bazelrc_quote(url))
    options += ["--remote_header=" + _bazelrc_quote(h) for h in headers]
    options.append(f"--remote_upload_local_results={'true' if upload_local_results else 'false'}")
    return options


def bazelrc_fragment(options: Sequence[str], android_env: Sequence[tuple[str, str]] = ()) -> str:
    """The text of ``mobilebuild.bazelrc`` for ``options`` (from ``remote_options``), after the
    ``--action_env NAME=value`` lines of ``android_env`` (trees whose WORKSPACE takes its Android
    rules from android_configure)."""

    env = []
    for name, value in android_env:
        if not re.fullmatch(r"[A-Z_][A-Z0-9_]*", name) or "\n" in value or "\r" in value:
            raise ToolchainError(
                f"cannot write --action_env {name}={value!r} into a bazelrc (one line per option)",
                "use an SDK / NDK path without line breaks",
            )
        env.append((name, _bazelrc_quote(value)))
    return render("bazel-mobilebuild.bazelrc", options=list(options), android_env=env)


def masked_option(option: str) -> str:
    """``--remote_header=NAME=VALUE`` with the value hidden (headers often carry tokens)."""
    if not option.startswith("--remote_header="):
        return option
    name = option[len("--remote_header="):].lstrip('"').partition("=")[0]
    return f"--remote_header={name}=***"


def fragment_mode(options: Sequence[str]) -> int:
    """Headers often carry tokens: then the fragment is readable by its owner only."""
    return 0o600 if any(o.startswith("--remote_header=") for o in options) else 0o644


def fragment_is_current(tree: str | os.PathLike, options: Sequence[str]) -> bool:
    """True when ``TREE/mobilebuild.bazelrc`` already holds exactly these options (and mode)."""
    path = Path(tree).resolve() / BAZELRC_NAME
    try:
        return (
            path.is_file()
            and path.read_text() == bazelrc_fragment(options)
            and (path.stat().st_mode & 0o777) == fragment_mode(options)
        )
    except OSError:
        return False


def write_bazelrc_fragment(
    tree: str | os.PathLike,
    remote_cache: str | None = None,
    remote_executor: str | None = None,
    remote_headers: Iterable[str] = (),
    upload_local_results: bool = True,
    *,
    bazel_version: tuple[int, ...] | None = None,
) -> Path | None:
    """Render ``TREE/mobilebuild.bazelrc`` with the remote settings (None: nothing to share).

    The user's own ``.bazelrc`` is never touched: ``build`` passes the fragment with the
    ``--bazelrc=`` startup option (or a user's .bazelrc can ``try-import`` it). Unchanged content
    is not rewritten. Flag names follow ``bazel_version`` (see ``remote_options``).
    """
    options = remote_options(
        remote_cache, remote_executor, remote_headers, upload_local_results, bazel_version=bazel_version
    )
    if not options:
        return None
    path = Path(tree).resolve() / BAZELRC_NAME
    if not fragment_is_current(tree, options):
        atomic_write_text(path, bazelrc_fragment(options), mode=fragment_mode(options))
    return path


MODERN_REMOTE = (0, 25, 0)  # --remote_cache accepts http(s)://, grpc(s):// URLs
HTTP_CACHE_FLAG = (0, 10, 0)  # --remote_http_cache (before: experimental REST cache flags)
SPAWN_CACHE_DEFAULT = (0, 15, 0)  # from here remote caching needs no --*strategy=remote


def _cache_options(url: str, version: tuple[int, ...] | None) -> list[str]:
    if version is None or versions.at_least(version, MODERN_REMOTE):
        return ["--remote_cache=" + _bazelrc_quote(url)]
    if urlparse(url).scheme not in ("http", "https"):
        # Before 0.25 --remote_cache took HOST:PORT (TLS by another flag), not these URLs.
        raise UserError(
            f"Bazel {version_str(version)} does not take a {urlparse(url).scheme}:// URL for its remote cache",
            "use an http(s):// cache, Bazel 0.25 or newer (--bazel PATH --ignore-bazel-version), or give your "
            "Bazel's own flags with --bazel-arg",
        )
    if versions.older_than(version, HTTP_CACHE_FLAG):
        raise UserError(
            f"Bazel {version_str(version)} has only experimental remote-cache flags, which mobilebuild does not write",
            "use Bazel 0.10 or newer for --remote-cache (--bazel PATH --ignore-bazel-version), or give your "
            "Bazel's own flags with --bazel-arg",
        )
    options = ["--remote_http_cache=" + _bazelrc_quote(url)]
    if versions.older_than(version, SPAWN_CACHE_DEFAULT):
        options += ["--spawn_strategy=remote", "--genrule_strategy=remote"]
    return options


def check_remote_url(url: str, option: str, schemes: Sequence[str]) -> str:
    url = url.strip()
    parsed = urlparse(url)
    bad_chars = any(c.isspace() or c in "\"'\\" for c in url)
    if bad_chars or parsed.scheme not in schemes or not (parsed.netloc or parsed.path):
        raise UserError(
            f"{option} {url!r} is not a usable URL",
            f"give a URL starting with {', '.join(s + '://' for s in schemes)} "
            "(e.g. http://cache.example.com:8080 or grpcs://remote.buildbuddy.io)",
        )
    return url


def check_remote_header(header: str) -> str:
    key, sep, value = header.partition("=")
    if not sep or not key.strip() or any(c.isspace() for c in key) or "\n" in value or "\r" in value:
        raise UserError(
            f"--remote-header {header!r} is not NAME=VALUE",
            "e.g. --remote-header 'x-buildbuddy-api-key=KEY' (one header per option)",
        )
    return header


def _bazelrc_quote(value: str) -> str:
    """Quote a value for a bazelrc line (Bazel tokenizes rc lines like a shell: "..." with \\)."""
    if re.fullmatch(r"[A-Za-z0-9_@%+=:,./~-]+", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---- running a build ---------------------------------------------------------------------------

_PROGRESS = re.compile(r"^\[[\d,]+ / [\d,]+\]\s*(.*)$")
_PROCESSES = re.compile(r"^INFO: (\d+) process(?:es)?(?:: (.*?))?\.?\s*$")
_TARGET_DONE = re.compile(r"^Target \S+ up-to-date:\s*$")
_ACTIONS = re.compile(r"^INFO: Build completed successfully, (\d+) total actions?")

# Failures we can explain better than Bazel does.
_KNOWN_FAILURES = (
    (
        re.compile(r"name 'android_(sdk|ndk)_repository' is not defined"),
        "this Bazel has no Android rules (Debian's bazel-bootstrap removes them): use the Bazel "
        "version the profile pins (`mobilebuild setup`) or pass --bazel PATH to one that has them",
    ),
    (
        re.compile(r"Another command is running|Another command \(pid="),
        "another Bazel build runs in this tree; wait for it or stop it with `bazel shutdown`",
    ),
    (
        re.compile(r"(Current Bazel version is|Bazel version is) .*(expected|at least|too old)", re.I),
        "the tree's WORKSPACE checks the Bazel version itself: use the version the profile pins",
    ),
)


def build_argv(
    bazel: Bazel,
    target: str,
    *,
    flags: Sequence[str] = (),
    bazelrc: str | os.PathLike | None = None,
    startup_flags: Sequence[str] = (),
) -> list[str]:
    """The exact command ``build`` runs (``--dry-run`` prints it)."""
    argv = [bazel.path, *bazel.startup_options, *startup_flags]
    if bazelrc is not None:
        # A startup option (before the command); absolute because Bazel runs inside the tree.
        argv.append(f"--bazelrc={os.path.abspath(bazelrc)}")
    # No curses/colour: the output goes to a pipe we parse and to the log file.
    argv += ["build", "--color=no", "--curses=no", *flags, target]
    return argv


def build(
    bazel: Bazel,
    tree: str | os.PathLike,
    target: str,
    *,
    flags: Sequence[str] = (),
    bazelrc: str | os.PathLike | None = None,
    log_path: str | os.PathLike | None = None,
    verbose: bool = False,
    startup_flags: Sequence[str] = (),
) -> BuildResult:
    """``bazel build TARGET`` in ``tree``: progress to the terminal, full log to ``log_path``."""
    argv = build_argv(bazel, target, flags=flags, bazelrc=bazelrc, startup_flags=startup_flags)
    log = Path(log_path) if log_path else new_log_path("bazel-build")
    log.parent.mkdir(parents=True, exist_ok=True)
    watcher = _OutputWatcher(verbose or console.settings.verbose)
    status = console.err().status(f"bazel build {target}") if _live_status(verbose) else nullcontext()
    start = time.monotonic()
    try:
        with status as live:
            watcher.live = live
            res = runner.run(argv, cwd=tree, extra_env=bazel.env, check=False, on_line=watcher, log_path=log)
    except KeyboardInterrupt:
        # The runner has stopped the Bazel client; Bazel's own action cache keeps its outputs
        # consistent, and we wrote nothing during the build.
        console.warn(f"bazel build interrupted (log: {log})")
        errors.interrupt_notes.append("Bazel's outputs stay consistent: the next build continues from them")
        raise
    seconds = time.monotonic() - start
    if res.returncode != 0:
        raise _failure(argv, res.returncode, watcher.lines, log, target)
    summary = parse_summary(watcher.lines)
    for w in watcher.remote_warnings:
        console.warn(w)
    return BuildResult(
        log_path=log,
        seconds=seconds,
        actions=summary["actions"],
        remote_cache_hits=summary["remote_cache_hits"],
        no_op=summary["no_op"],
        processes=summary["processes"],
        remote_cache_hit_ratio=summary["remote_cache_hit_ratio"],
        warnings=list(watcher.remote_warnings) + list(bazel.warnings),
        argv=argv,
        outputs=reported_outputs(watcher.lines),
    )


def parse_summary(lines: Sequence[str]) -> dict:
    """Bazel's closing lines -> {actions, processes, remote_cache_hits, remote_cache_hit_ratio,
    no_op}.

    ``INFO: 3 processes: 2 remote cache hit, 1 internal.`` (Bazel >= 4 counts the internal
    ones), ``INFO: 0 processes.`` (Bazel 2.x no-op), ``INFO: Build completed successfully, 3 total
    actions``. Bazels too old to print the process line give processes={} and no_op=False.
    The hit ratio counts every process but Bazel's internal ones (symlink trees, file writes:
    never looked up in a remote cache); None when no such process ran.
    """
    processes: dict[str, int] = {}
    total: int | None = None
    actions: int | None = None
    for line in lines:
        m = _PROCESSES.match(line)
        if m:
            total = int(m.group(1))
            processes = {}
            for part in (m.group(2) or "").split(","):
                pm = re.match(r"\s*(\d+)\s+(.+?)\s*$", part)
                if pm:
                    processes[pm.group(2)] = processes.get(pm.group(2), 0) + int(pm.group(1))
        am = _ACTIONS.match(line)
        if am:
            actions = int(am.group(1))
    hits = processes.get("remote cache hit", 0)
    cacheable = None if total is None else total - processes.get("internal", 0)
    ratio = round(hits / cacheable, 4) if cacheable else None
    no_op = cacheable == 0
    return {
        "actions": actions,
        "processes": processes,
        "remote_cache_hits": hits,
        "remote_cache_hit_ratio": ratio,
        "no_op": no_op,
    }


def reported_outputs(lines: Sequence[str]) -> list[str]:
    """The files under ``Target //x:y up-to-date:`` (indented, one a line), in Bazel's order."""
    out: list[str] = []
    listing = False
    for line in lines:
        if _TARGET_DONE.match(line):
            listing = True
        elif listing and line.startswith("  ") and line.strip():
            out.append(line.strip())
        else:
            listing = False
    return out


class _OutputWatcher:
    """Receives Bazel's output line by line: raw echo (verbose) or the live status line.

    Keeps what the result needs, bounded (a TF build prints tens of thousands of lines; the
    log file has them all): the last ``runner.TAIL_LINES`` lines for the closing summary, and
    the first error with the lines after it for the failure report."""

    def __init__(self, verbose: bool):
        self.verbose = verbose
        self.tail: deque[str] = deque(maxlen=runner.TAIL_LINES)
        self.first_error: list[str] = []
        self.remote_warnings: list[str] = []
        self.live = None
        self._pending_remote: str | None = None

    @property
    def lines(self) -> list[str]:
        """The first error's lines (when there was one, and no longer in the tail), then the tail."""
        tail = list(self.tail)
        if self.first_error and self.first_error[0] not in tail:
            return self.first_error + tail
        return tail

    def __call__(self, line: str) -> None:
        self.tail.append(line)
        if self.first_error or line.startswith("ERROR:"):
            if len(self.first_error) < _ERROR_CONTEXT:
                self.first_error.append(line)
        if self.verbose:
            console.err().print(line, markup=False, highlight=False)
        if self._pending_remote is not None:
            # Bazel 2-4 put the reason on the line after "WARNING: Reading from Remote Cache:".
            self._note_remote(f"remote cache: {self._pending_remote} failed ({line.strip()}); building locally")
            self._pending_remote = None
        if line.startswith("WARNING:") and "remote cache" in line.lower():
            what = line[len("WARNING:"):].strip()
            if what.endswith(":"):
                self._pending_remote = what.rstrip(":").lower()
            else:  # newer Bazels: "WARNING: Remote Cache: UNAVAILABLE: io exception"
                self._note_remote(f"remote cache problem ({what}); building locally")
            return
        if self.live is not None:
            text = _status_text(line)
            if text:
                self.live.update(text)

    def _note_remote(self, message: str) -> None:
        if message not in self.remote_warnings:
            self.remote_warnings.append(message)


_ERROR_CONTEXT = 64  # lines kept from the first ERROR: on (first_error_lines shows 12)


def _status_text(line: str) -> str | None:
    m = _PROGRESS.match(line)
    if m:
        return f"bazel: {line.strip()}"[:160]
    if line.startswith(("Loading:", "Analyzing:", "INFO: Analyzed", "INFO: Found")):
        return f"bazel: {line.strip()}"[:160]
    return None


def _live_status(verbose: bool) -> bool:
    return not (verbose or console.settings.verbose) and console.is_interactive()


def _failure(argv: list[str], returncode: int, lines: list[str], log: Path, target: str) -> CommandError:
    excerpt = first_error_lines(lines)
    first = next((ln for ln in excerpt if ln.startswith("ERROR:")), excerpt[0] if excerpt else "")
    reason = first[len("ERROR:"):].strip() if first.startswith("ERROR:") else first.strip()
    hint = None
    for pattern, text in _KNOWN_FAILURES:
        if any(pattern.search(ln) for ln in lines):
            hint = text
            break
    if hint is None:
        hint = "the lines below are Bazel's first errors; the full log has everything (--verbose shows it live)"
    message = f"bazel build {target} failed (exit {returncode})" + (f": {_shorten(reason)}" if reason else "")
    return CommandError(argv, returncode, "\n".join(excerpt), message=message, hint=hint, log_path=str(log))


def first_error_lines(lines: Sequence[str], limit: int = 12) -> list[str]:
    """The first ``ERROR:`` line and what follows it up to ``limit`` lines (not the whole log)."""
    start = next((i for i, ln in enumerate(lines) if ln.startswith("ERROR:")), None)
    if start is None:
        tail = [ln for ln in lines if ln.strip()]
        return tail[-limit:]
    out: list[str] = []
    in_command_echo = False
    for ln in lines[start:]:
        if ln.startswith("INFO: Elapsed time") or len(out) >= limit:
            break
        if "linux-sandbox" in ln and re.match(r"^\d+\.\d+: src/main/tools/", ln):
            continue  # sandbox debug chatter of some Bazel builds
        if in_command_echo and ln.startswith("  "):
            continue  # the failed command's own command line (--verbose_failures style): in the log
        in_command_echo = ln.rstrip().endswith("error executing command")
        out.append(ln.rstrip())
    return out


def _shorten(text: str, width: int = 200) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def shutdown(bazel: Bazel, tree: str | os.PathLike) -> None:
    """Stop the Bazel server of ``tree`` (frees memory after a one-off build)."""
    runner.run([bazel.path, *bazel.startup_options, "shutdown"], cwd=tree, extra_env=bazel.env, check=False, timeout=120)
