"""The Raspberry Pi makefile build, on the Pi itself or on a Pi reached over ssh.

The steps of TensorFlow's Pi instructions, as data from the profile's [pi] table:
the makefile deps (locally: mobilebuild's verified downloader; on a Pi over ssh: the tree's
``download_dependencies.sh``); optionally ``apt-get install autoconf automake libtool``; protobuf
from ``downloads/protobuf`` (``./autogen.sh && ./configure && make && make install && ldconfig``);
then ``make -f tensorflow/contrib/makefile/Makefile HOST_OS=PI TARGET=PI OPTFLAGS=... CXX=...``
with the Pi 1 (ARMv6: ``-Os``) or Pi 2/3 (NEON) flag set. A step whose result already exists is
skipped, so a second run only re-runs make (itself incremental).

Locally (a Pi, detected from /proc/device-tree/model, or ``--local``) each step runs through
the runner. Remotely (``--host user@pi``) the model and labels are copied with scp into the
Pi examples' data dir of the remote tree, and each step runs with ssh (argv lists, BatchMode so a
password prompt can never hang us), its output streamed line by line and logged.
"""

from __future__ import annotations

import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from mobilebuild import console, runner
from mobilebuild.errors import CommandError, ToolchainError, UserError
from mobilebuild.fsutil import copy_if_changed
from mobilebuild.graphs import io, runtime_ops
from mobilebuild.paths import new_log_path
from mobilebuild.profiles import Profile
from mobilebuild.tf import deps
from mobilebuild.tf.deps import require_makefile
from mobilebuild.tf.patching import sha256_file
from mobilebuild.tf.tree import VERSION_H, parse_version_h, resolve

DEVICE_MODEL = Path("/proc/device-tree/model")
_SAFE_REMOTE_PATH = re.compile(r"^[A-Za-z0-9_./~+-]+$")
_HOST = re.compile(r"^(?:[A-Za-z0-9._-]+@)?[A-Za-z0-9._:\[\]-]+$")
SSH_FAILED_HINT = "check --host/--port and that your key is authorised on the Pi (ssh-copy-id); mobilebuild never asks for passwords"


@dataclass
class PiStep:
    name: str
    argv: list[str]
    cwd: str = "."  # relative to the tree
    creates: str | None = None  # skip the step when this path exists (relative: to the tree)
    description: str = ""


@dataclass
class PiOptions:
    profile: Profile | None = None  # None: ``resolve`` finds it from tf_src / tf_version / the Pi's tree
    pi_model: str = "3"
    tree: Path | None = None  # local tree (local mode)
    host: str | None = None
    port: int | None = None
    identity: str | None = None
    ssh_options: list[str] = field(default_factory=list)
    remote_dir: str = "tensorflow"
    local: bool = False
    model: Path | None = None
    labels: Path | None = None
    cxx: str | None = None
    jobs: int | None = None
    install_packages: bool = False
    deps: bool = True
    protobuf: bool = True
    dry_run: bool = False
    log_path: Path | None = None
    tf_src: str | None = None  # the local tree (--tf-src); becomes ``tree``
    tf_version: str | None = None  # overrides the version the tree reports

    def resolve(self, conf: dict | None = None) -> None:
        """Profile and tree through the one resolver: over ssh the Pi's version.h (unless
        --tf-version names one), locally the tree of --tf-src (or mobilebuild.toml)."""
        if self.host:
            where = f"{self.remote_dir}/{VERSION_H} on {self.host}"
            found = resolve(tf_version=self.tf_version, conf={}, need_tree=False,
                            read_version=lambda: remote_version(self), read_where=where)
        else:
            if not self.tf_src and not (conf or {}).get("tf_src"):
                raise UserError("no TensorFlow tree given", "pass --tf-src DIR, or --host user@pi to build on a Pi over ssh")
            found = resolve(tf_src=self.tf_src, tf_version=self.tf_version, conf=conf)
            self.tree = found.root
        self.profile = found.profile


# ---- the plan ----------------------------------------------------------------------------------


def flag_set(profile: Profile, pi_model: str) -> str:
    models: dict = profile.require("pi.models")
    key = str(pi_model).strip().lower()
    if key not in models:
        raise UserError(f"unknown --pi-model {pi_model!r}", "use one of: " + ", ".join(models))
    return models[key]


def optflags(profile: Profile, pi_model: str) -> str:
    return profile.require(f"pi.optflags.{flag_set(profile, pi_model)}")


def make_argv(profile: Profile, pi_model: str, *, cxx: str | None = None, jobs: int | None = None, make: str = "make") -> list[str]:
    """``make -f .../Makefile HOST_OS=PI TARGET=PI OPTFLAGS=... CXX=...`` for this Pi model."""
    argv = [make]
    if jobs:
        argv.append(f"-j{jobs}")  # no -j by default: the Pi's 1 GB runs out of memory
    argv += ["-f", profile.require("makefile.makefile"), *profile.require("pi.makefile_flags")]
    argv += [f"OPTFLAGS={optflags(profile, pi_model)}", f"CXX={cxx or profile.require('pi.cxx')}"]
    return argv


def plan(
    profile: Profile,
    pi_model: str,
    *,
    cxx: str | None = None,
    jobs: int | None = None,
    install_packages: bool = False,
    deps: bool = True,
    protobuf: bool = True,
) -> list[PiStep]:
    steps: list[PiStep] = []
    if deps:
        downloads = profile.require("makefile.downloads_dir")
        steps.append(
            PiStep(
                "deps",
                ["bash", profile.require("pi.download_script")],
                creates=f"{downloads}/protobuf/autogen.sh",
                description="download the makefile dependencies",
            )
        )
    if install_packages:
        steps.append(
            PiStep(
                "packages",
                ["sudo", "apt-get", "install", "-y", *profile.require("pi.apt_packages")],
                description="install the protobuf build tools",
            )
        )
    if protobuf:
        steps.append(
            PiStep(
                "protobuf",
                ["sh", "-c", "./autogen.sh && ./configure && make && sudo make install && sudo ldconfig"],
                cwd=profile.require("pi.protobuf_dir"),
                creates="/usr/local/bin/protoc",
                description="build and install protobuf",
            )
        )
    steps.append(
        PiStep(
            "make",
            make_argv(profile, pi_model, cxx=cxx, jobs=jobs),
            description=f"build TensorFlow for the Pi ({flag_set(profile, pi_model)} flags)",
        )
    )
    return steps


def is_raspberry_pi(model_file: Path = DEVICE_MODEL) -> bool:
    try:
        return "raspberry pi" in model_file.read_text(errors="replace").lower()
    except OSError:
        return False


# ---- ssh ---------------------------------------------------------------------------------------


def check_host(host: str) -> str:
    if host.startswith("-") or not _HOST.match(host):
        raise UserError(f"--host {host!r} is not user@host", "e.g. --host pi@raspberrypi.local")
    return host


def check_remote_path(path: str) -> str:
    if not _SAFE_REMOTE_PATH.match(path) or path.startswith("-"):
        raise UserError(
            f"--remote-dir {path!r} has characters mobilebuild does not pass through ssh/scp",
            "use a plain path (letters, digits, . _ - / ~), relative to the Pi user's home or absolute",
        )
    return path


def ssh_argv(opts: PiOptions, remote_command: str) -> list[str]:
    return ["ssh", *_ssh_common(opts, port_flag="-p"), "--", opts.host, remote_command]


def scp_argv(opts: PiOptions, files: Sequence[Path], remote_dir: str) -> list[str]:
    return ["scp", *_ssh_common(opts, port_flag="-P"), "--", *map(str, files), f"{opts.host}:{remote_dir}/"]


def _ssh_common(opts: PiOptions, port_flag: str) -> list[str]:
    out = ["-o", "BatchMode=yes"]  # never a password prompt we cannot answer
    if opts.port:
        out += [port_flag, str(opts.port)]
    if opts.identity:
        out += ["-i", str(opts.identity)]
    for o in opts.ssh_options:
        out += ["-o", o]
    return out


def remote_command(step: PiStep, remote_dir: str) -> str:
    """One step as a command for the Pi's shell (every value quoted)."""
    where = remote_dir if step.cwd == "." else f"{remote_dir}/{step.cwd}"
    cmd = f"cd {shlex.quote(where)} && {shlex.join(step.argv)}"
    if step.name == "make":
        cxx = next((a[4:] for a in step.argv if a.startswith("CXX=")), None)
        if cxx:
            cmd = (
                f"command -v {shlex.quote(cxx)} >/dev/null || "
                f"{{ echo {shlex.quote(f'mobilebuild: {cxx} not found on the Pi (pass --cxx, e.g. --cxx g++)')} >&2; exit 127; }}; "
                + cmd
            )
    if step.creates:
        target = step.creates if step.creates.startswith("/") else f"{remote_dir}/{step.creates}"
        done = shlex.quote(f"mobilebuild: {step.name} already done ({step.creates} exists)")
        cmd = f"if [ -e {shlex.quote(target)} ]; then echo {done}; else {cmd}; fi"
    return cmd


# ---- running -----------------------------------------------------------------------------------


def run(opts: PiOptions) -> dict[str, Any]:
    """Run (or with dry_run: print) the Pi build; returns the JSON result."""
    _check_inputs(opts)
    mode = _mode(opts)
    steps = plan(
        opts.profile,
        opts.pi_model,
        cxx=opts.cxx,
        jobs=opts.jobs,
        install_packages=opts.install_packages,
        deps=opts.deps,
        protobuf=opts.protobuf,
    )
    log = Path(opts.log_path) if opts.log_path else new_log_path("pi-build")
    result: dict[str, Any] = {
        "mode": mode,
        "host": opts.host,
        "pi_model": opts.pi_model,
        "optflags": optflags(opts.profile, opts.pi_model),
        "tree": opts.remote_dir if mode == "ssh" else str(opts.tree),
        "log": None if opts.dry_run else str(log),  # a dry run writes no log
        "copied": [],
        "steps": [],
        "dry_run": opts.dry_run,
    }
    if mode == "ssh":
        _run_remote(opts, steps, log, result)
    else:
        _run_local(opts, steps, log, result)
    return result


def remote_version(opts: PiOptions) -> tuple[int, int, int]:
    """The TF version of the tree on the Pi (its version.h, read over ssh)."""
    check_host(opts.host or "")
    remote_dir = check_remote_path(opts.remote_dir)
    res = runner.run(ssh_argv(opts, f"cat {shlex.quote(remote_dir + '/' + VERSION_H)}"), check=False, timeout=60)
    if res.returncode != 0:
        raise UserError(
            f"cannot read {remote_dir}/{VERSION_H} on {opts.host} (ssh exit {res.returncode}): {_last_line(res.output)}",
            "check --host/--remote-dir (the TensorFlow checkout on the Pi), or give --tf-version",
        )
    version = parse_version_h(res.stdout)
    if version is None:
        raise UserError(f"{remote_dir}/{VERSION_H} on {opts.host} has no TF_*_VERSION defines", "give --tf-version")
    return version


def _mode(opts: PiOptions) -> str:
    if opts.host:
        check_host(opts.host)
        check_remote_path(opts.remote_dir)
        return "ssh"
    if opts.local or is_raspberry_pi():
        if opts.tree is None:
            raise UserError("no TensorFlow tree to build", "pass --tf-src DIR (the checkout on this Pi)")
        return "local"
    raise UserError(
        "this machine is not a Raspberry Pi",
        "build on the Pi over ssh with --host user@pi, or run here anyway with --local",
    )


def _check_inputs(opts: PiOptions) -> None:
    require_makefile(opts.profile)
    flag_set(opts.profile, opts.pi_model)
    for what, p in (("--model", opts.model), ("--labels", opts.labels)):
        if p is not None and not Path(p).is_file():
            raise UserError(f"{what} {p}: no such file", f"give the path of your {what[2:]} file")
    if opts.model is not None:
        for line in model_warnings(opts):
            console.warn(line)


def model_warnings(opts: PiOptions) -> list[str]:
    """The Pi examples link the makefile build of the tree: a model using an op that build has
    no kernel for (or attrs it does not know) fails on the Pi at run time. Said before the long
    build; not refused, since the model may be meant for another program on the Pi."""

    p = opts.profile
    own = opts.tree if opts.tree is not None and (Path(opts.tree) / runtime_ops.OP_FILES_LIST).is_file() else None
    try:
        graph_def = io.load_graph_def(opts.model)
    except UserError as exc:
        return [f"{opts.model} was not checked against the Pi's op set: {exc.message}"]
    opset = runtime_ops.load_opset(p.version_text, own, runtime="makefile")
    problems = runtime_ops.check_graph(graph_def, opset)
    if not problems:
        return []
    return [f"{opts.model} would not load in the Pi's TF {opset.tag} (makefile build):",
            *[f"  {line}" for line in runtime_ops.summarize(problems)],
            f"  `mobilebuild model downgrade {opts.model} -o OUT.pb --tf-version {p.version_text} --runtime makefile` "
            "rewrites what can be rewritten"]


def _run_local(opts: PiOptions, steps: list[PiStep], log: Path, result: dict) -> None:
    tree = Path(opts.tree)  # type: ignore[arg-type]
    data_dir = tree / opts.profile.require("pi.data_dir")
    files = [Path(p) for p in (opts.model, opts.labels) if p is not None]
    for f in files:
        dst = data_dir / f.name
        if opts.dry_run:
            console.info(f"would copy {f} -> {dst}")
        else:
            data_dir.mkdir(parents=True, exist_ok=True)
            changed = copy_if_changed(f, dst)
            console.info(f"pi: {'copied' if changed else 'unchanged'} {dst}")
        result["copied"].append(str(dst))
    make_step = next(s for s in steps if s.name == "make")
    cxx = next((a[4:] for a in make_step.argv if a.startswith("CXX=")), None)
    if cxx and not opts.dry_run and not runner.which(cxx):
        raise ToolchainError(f"the C++ compiler {cxx} is not installed", "pass --cxx (e.g. --cxx g++) or install it")
    for step in steps:
        if step.name == "deps":
            # Here mobilebuild itself runs: use its downloader, which checks every sha256
            # (download_dependencies.sh checks none). It is idempotent on its own.
            if opts.dry_run:
                console.info("would fetch the makefile deps with mobilebuild's verified downloader (`mobilebuild deps`)")
                result["steps"].append({"name": "deps", "status": "planned", "via": "mobilebuild deps"})
                continue

            start = time.monotonic()
            report = deps.fetch_deps(tree, opts.profile)
            status = "ran" if report.changed else "skipped"
            result["steps"].append({"name": "deps", "status": status, "seconds": round(time.monotonic() - start, 3)})
            continue
        creates = step.creates and (Path(step.creates) if step.creates.startswith("/") else tree / step.creates)
        if creates and creates.exists():
            console.info(f"pi: {step.name}: already done ({step.creates} exists)")
            result["steps"].append({"name": step.name, "status": "skipped"})
            continue
        cwd = tree / step.cwd
        if opts.dry_run:
            console.info(f"would run (in {cwd}): {runner.format_argv(step.argv)}")
            result["steps"].append({"name": step.name, "status": "planned", "argv": step.argv, "cwd": str(cwd)})
            continue
        console.info(f"pi: {step.description} ({step.name})")
        seconds = _stream(step.argv, cwd, log, step.name)
        result["steps"].append({"name": step.name, "status": "ran", "argv": step.argv, "seconds": seconds})


def _run_remote(opts: PiOptions, steps: list[PiStep], log: Path, result: dict) -> None:
    remote_dir = opts.remote_dir
    data_dir = f"{remote_dir}/{opts.profile.require('pi.data_dir')}"
    files = [Path(p) for p in (opts.model, opts.labels) if p is not None]
    commands: list[tuple[str, list[str]]] = []
    if files:
        result["copied"] = [f"{opts.host}:{data_dir}/{f.name}" for f in files]
        if opts.dry_run:
            commands.append(("mkdir", ssh_argv(opts, f"mkdir -p {shlex.quote(data_dir)}")))
            commands.append(("copy", scp_argv(opts, files, data_dir)))
        else:
            changed = _files_to_copy(opts, files, data_dir)
            if changed:
                commands.append(("copy", scp_argv(opts, changed, data_dir)))
            else:
                console.info(f"pi: model and labels on {opts.host} are unchanged")
                result["steps"].append({"name": "copy", "status": "skipped"})
    for step in steps:
        commands.append((step.name, ssh_argv(opts, remote_command(step, remote_dir))))
    if any(s.name == "deps" for s in steps):
        console.warn(
            "the Pi fetches the deps with download_dependencies.sh, which checks no sha256; for verified copies "
            "run `mobilebuild deps` on a checkout of the same tag, copy its downloads/ to the Pi and pass --skip-deps"
        )
    for name, argv in commands:
        if opts.dry_run:
            console.info(f"would run: {runner.format_argv(argv)}")
            result["steps"].append({"name": name, "status": "planned", "argv": argv})
            continue
        console.info(f"pi: {name} on {opts.host}")
        seconds = _stream(argv, None, log, name, remote=True)
        result["steps"].append({"name": name, "status": "ran", "argv": argv, "seconds": seconds})


def _files_to_copy(opts: PiOptions, files: list[Path], data_dir: str) -> list[Path]:
    """Create the data dir on the Pi and return the files whose sha256 differs there (so a
    re-run copies nothing and leaves the Pi's files untouched)."""

    names = " ".join(shlex.quote(f.name) for f in files)
    probe = f"mkdir -p {shlex.quote(data_dir)} && cd {shlex.quote(data_dir)} && {{ sha256sum -- {names} 2>/dev/null || true; }}"
    res = runner.run(ssh_argv(opts, probe), check=False, timeout=120)
    if res.returncode == 255:
        raise CommandError(
            res.argv, res.returncode, res.output,
            message=f"ssh to the Pi failed: {_last_line(res.output)}",
            hint=SSH_FAILED_HINT,
        )
    if res.returncode != 0:
        raise CommandError(res.argv, res.returncode, res.output, message=f"cannot create {data_dir} on {opts.host}")
    remote = {}
    for line in res.stdout.splitlines():
        parts = line.split(None, 1)
        if len(parts) == 2:
            remote[parts[1].lstrip("*").strip()] = parts[0]
    return [f for f in files if remote.get(f.name) != sha256_file(f)]


def _stream(argv: list[str], cwd: Path | None, log: Path, name: str, *, remote: bool = False) -> float:
    """Run one step, its output shown live (the build is long) and appended to the log."""
    log.parent.mkdir(parents=True, exist_ok=True)
    step_log = log.with_name(f"{log.stem}-{name}{log.suffix}")

    def echo(line: str) -> None:
        # Live on stderr even with --json (stdout carries only the JSON result).
        console.err().print(f"  {line}", markup=False, highlight=False)

    start = time.monotonic()
    try:
        runner.run(argv, cwd=cwd, on_line=echo, log_path=step_log)
    except CommandError as exc:
        where = "on the Pi" if remote else "here"
        if remote and exc.returncode == 255:
            exc.message = f"ssh to the Pi failed: {_last_line(exc.output)}"
            exc.hint = SSH_FAILED_HINT
        else:
            exc.message = f"pi step '{name}' failed {where} (exit {exc.returncode})"
            exc.hint = exc.hint or "the last lines are below; the full output is in the log"
        exc.args = (exc.message,)
        exc.log_path = str(log)
        raise
    finally:
        _append(log, step_log)
    return round(time.monotonic() - start, 3)


def _append(log: Path, part: Path) -> None:
    try:
        with open(log, "a", encoding="utf-8") as out, open(part, encoding="utf-8", errors="replace") as src:
            out.write(src.read())
        part.unlink()
    except OSError:
        pass


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"
