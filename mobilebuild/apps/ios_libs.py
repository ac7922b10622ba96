"""The iOS static libraries of the makefile build (what build_all_ios.sh does), resumable per arch.

Order as in TensorFlow's scripts: the makefile deps (our downloader), host protoc + iOS protobuf
(the tree's own ``compile_ios_protobuf.sh``, skipped when its outputs exist), then per arch
``make -f tensorflow/contrib/makefile/Makefile TARGET=IOS IOS_ARCH=<ARCH>
LIB_NAME=libtensorflow-core-<arch>.a OPTFLAGS=...`` (compile_ios_tensorflow.sh), then
``lipo -create`` of the per-arch libraries into ``gen/lib/libtensorflow-core.a``.

Resumable: an arch whose library exists, is newer than every input (the Makefile, the source
lists next to it, the sources they name, the iOS protobuf libraries) and was built with the same
command line is skipped; so is lipo when the fat library is newer than the arch libraries it
combines. The build needs Xcode: elsewhere it refuses with one line unless the host check is
explicitly overridden (``force_host`` / MOBILEBUILD_IOS_FORCE_HOST=1), which runs the same
steps with whatever ``make``/``lipo`` are given (the tests use a test Makefile and llvm-lipo).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from mobilebuild import console, runner
from mobilebuild.errors import CommandError, ToolchainError, UserError
from mobilebuild.fsutil import write_if_changed
from mobilebuild.paths import log_dir
from mobilebuild.profiles import Profile
from mobilebuild.tf import deps
from mobilebuild.tf.deps import require_makefile

FORCE_HOST_ENV = "MOBILEBUILD_IOS_FORCE_HOST"
STAMP_SUFFIX = ".mobilebuild-cmd"


@dataclass
class ArchResult:
    arch: str
    library: str
    status: str  # "built" | "up-to-date"
    seconds: float = 0.0


@dataclass
class IosLibsResult:
    library: str
    archs: list[ArchResult]
    lipo: str  # "created" | "up-to-date"
    protobuf: str  # "built" | "present"
    logs: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {
            "library": self.library,
            "lipo": self.lipo,
            "protobuf": self.protobuf,
            "archs": [vars(a) for a in self.archs],
            "logs": self.logs,
        }


def check_host(force_host: bool = False) -> None:
    """Refuse on anything but macOS unless the check is overridden on purpose."""
    if sys.platform == "darwin" or force_host or os.environ.get(FORCE_HOST_ENV) == "1":
        return
    raise ToolchainError(
        f"building the iOS libraries needs macOS with Xcode (this machine is {sys.platform})",
        "run `mobilebuild ios` here to generate the project, and `mobilebuild ios-libs` on a Mac",
    )


def select_archs(profile: Profile, archs: Sequence[str] | None) -> list[str]:
    known = [a.upper() for a in profile.require("ios.archs")]
    if not archs:
        return known
    out: list[str] = []
    for a in archs:
        for part in str(a).split(","):
            name = part.strip().upper()
            if not name:
                continue
            if name not in known:
                raise UserError(f"unknown iOS arch {part.strip()!r}", "use one or more of: " + ", ".join(known))
            if name not in out:
                out.append(name)
    return out


def arch_library(tree: Path, arch: str, profile: Profile) -> Path:
    """Where compile_ios_tensorflow.sh's make puts one arch's library."""
    return Path(tree) / profile.require("ios.gen_dir") / "lib" / f"ios_{arch}" / f"{profile.require('ios.lib_prefix')}-{arch.lower()}.a"


def make_argv(profile: Profile, arch: str, *, make: str = "make", jobs: int | None = None, optflags: str = "-O3") -> list[str]:
    makefile = profile.require("makefile.makefile")
    return [
        make,
        f"-j{jobs or os.cpu_count() or 1}",
        "-f",
        makefile,
        "TARGET=IOS",
        f"IOS_ARCH={arch}",
        f"LIB_NAME={profile.require('ios.lib_prefix')}-{arch.lower()}.a",
        f"OPTFLAGS={optflags}",
    ]


def build_libraries(
    tree: str | os.PathLike,
    profile: Profile,
    *,
    archs: Sequence[str] | None = None,
    make: str = "make",
    lipo: str = "lipo",
    jobs: int | None = None,
    optflags: str = "-O3",
    force_host: bool = False,
    fetch_deps: bool = True,
    offline: bool = False,
    log_dir: str | os.PathLike | None = None,
) -> IosLibsResult:
    """Build the per-arch libraries and the fat ``libtensorflow-core.a`` (see module doc)."""
    check_host(force_host)
    require_makefile(profile)
    tree = Path(tree).resolve()
    chosen = select_archs(profile, archs)
    makefile = tree / profile.require("makefile.makefile")
    if not makefile.is_file():
        raise UserError(
            f"{makefile} not found: not a TensorFlow tree with the makefile build",
            "pass the root of a TensorFlow 1.x checkout with --tf-src",
        )
    # Both programs are needed at the end of a long build: a missing one fails now, not then.
    for program, option in ((make, "--make"), (lipo, "--lipo")):
        _require_program(program, option)
    logs = Path(log_dir) if log_dir else _log_dir()
    logs.mkdir(parents=True, exist_ok=True)

    if fetch_deps:
        deps.fetch_deps(tree, profile, offline=offline)
    protobuf = _ensure_protobuf(tree, profile, logs)

    newest_input = _newest_input(tree, profile)
    results: list[ArchResult] = []
    for i, arch in enumerate(chosen, 1):
        argv = make_argv(profile, arch, make=make, jobs=jobs, optflags=optflags)
        lib = arch_library(tree, arch, profile)
        if _up_to_date(lib, argv, newest_input):
            console.info(f"ios: {arch} up to date ({_rel(lib, tree)}), skipped")
            results.append(ArchResult(arch, str(lib), "up-to-date"))
            continue
        console.info(f"ios: building {arch} ({i}/{len(chosen)}) with make, log {logs / f'ios-{arch}.log'}")
        start = time.monotonic()
        _run_logged(argv, tree, logs / f"ios-{arch}.log", f"make for {arch}")
        if not lib.is_file():
            raise UserError(
                f"make for {arch} finished but {lib} is missing",
                "the Makefile did not honour LIB_NAME/IOS_ARCH as TensorFlow's does; check the log",
            )
        _write_stamp(lib, argv)
        results.append(ArchResult(arch, str(lib), "built", round(time.monotonic() - start, 3)))

    fat = tree / profile.require("ios.core_lib")
    libs = [Path(r.library) for r in results]
    lipo_status = _lipo(lipo, libs, fat, tree, logs)
    return IosLibsResult(str(fat), results, lipo_status, protobuf, [str(p) for p in sorted(logs.glob("ios-*.log"))])


def _require_program(program: str, option: str) -> None:
    found = runner.is_executable(program) if os.sep in program else runner.which(program) is not None
    if not found:
        raise ToolchainError(
            f"{option} {program}: no such program",
            "install Xcode's command line tools (`xcode-select --install`), or name the program with "
            f"{option} PATH",
        )


def _ensure_protobuf(tree: Path, profile: Profile, logs: Path) -> str:
    """Host protoc and the fat iOS protobuf libraries, via the tree's own script when missing."""
    script_rel = profile.require("ios.protobuf_script")
    wanted = [tree / profile.require("ios.host_protoc"), *(tree / p for p in profile.require("ios.protobuf_libs"))]
    if all(p.is_file() for p in wanted):
        return "present"
    script = tree / script_rel
    if not script.is_file():
        raise UserError(
            f"iOS protobuf is not built and {script_rel} is missing",
            "use a TensorFlow 1.x tree (the script builds host protoc and the iOS protobuf libraries)",
        )
    console.info(f"ios: building host protoc and iOS protobuf ({script_rel}), log {logs / 'ios-protobuf.log'}")
    _run_logged(["bash", str(script)], tree, logs / "ios-protobuf.log", "compile_ios_protobuf.sh")
    missing = [str(p) for p in wanted if not p.is_file()]
    if missing:
        raise UserError(f"{script_rel} finished but did not produce {', '.join(missing)}", "check the log")
    return "built"


def _lipo(lipo: str, libs: list[Path], fat: Path, tree: Path, logs: Path) -> str:
    argv_key = [lipo, "-create", *map(str, libs)]
    if _up_to_date(fat, argv_key, max(p.stat().st_mtime_ns for p in libs)):
        console.info(f"ios: {_rel(fat, tree)} up to date")
        return "up-to-date"
    fat.parent.mkdir(parents=True, exist_ok=True)
    tmp = fat.with_name(f".{fat.name}.{os.getpid()}.tmp")
    try:
        _run_logged([lipo, "-create", *map(str, libs), "-output", str(tmp)], tree, logs / "ios-lipo.log", "lipo")
        os.replace(tmp, fat)  # never a half-written fat library
    finally:
        if tmp.exists():
            tmp.unlink()
    _write_stamp(fat, argv_key)
    console.info(f"ios: created {_rel(fat, tree)} ({', '.join(p.parent.name[4:] for p in libs)})")
    return "created"


def _run_logged(argv: list[str], tree: Path, log: Path, what: str) -> None:
    try:
        # A status line with make's latest line (like Bazel's); every line with --verbose.
        with console.line_status(what) as show:
            runner.run(argv, cwd=tree, on_line=show, log_path=log)
    except CommandError as exc:
        exc.message = f"{what} failed (exit {exc.returncode}): {runner.format_argv(argv)}"
        exc.args = (exc.message,)
        exc.hint = exc.hint or "the last lines of its output are below; the full log is kept"
        raise


def _up_to_date(output: Path, argv: list[str], newest_input_ns: int) -> bool:
    stamp = output.with_name(output.name + STAMP_SUFFIX)
    try:
        return (
            output.is_file()
            and output.stat().st_mtime_ns >= newest_input_ns
            and stamp.read_text() == "\n".join(argv) + "\n"
        )
    except OSError:
        return False


def _write_stamp(output: Path, argv: list[str]) -> None:
    write_if_changed(output.with_name(output.name + STAMP_SUFFIX), "\n".join(argv) + "\n")


def _newest_input(tree: Path, profile: Profile) -> int:
    """mtime of the newest input of the per-arch make: the Makefile, the file lists next to it
    (tf_op_files.txt, ...), every source those lists name, and the iOS protobuf libraries."""
    makefile = tree / profile.require("makefile.makefile")
    candidates = [makefile, *(tree / p for p in profile.require("ios.protobuf_libs"))]
    for listing in sorted(makefile.parent.glob("*.txt")):
        candidates.append(listing)
        for line in listing.read_text(errors="replace").splitlines():
            rel = line.strip()
            if rel and not rel.startswith("#"):
                candidates.append(tree / rel)
    newest = 0
    for p in candidates:
        try:
            newest = max(newest, p.stat().st_mtime_ns)
        except OSError:
            continue
    return newest


def _rel(path: Path, tree: Path) -> str:
    try:
        return str(path.relative_to(tree))
    except ValueError:
        return str(path)


def _log_dir() -> Path:
    return log_dir()
