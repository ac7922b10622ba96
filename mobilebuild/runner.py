"""The one door to external programs (bazel, adb, make, lipo, sdkmanager, ssh, ...).

Every call is logged with ``--verbose`` as the exact command line. A non-zero exit raises
``CommandError`` carrying command, exit code and output, unless ``check=False``.
Streaming mode hands each output line to a callback (progress lines) and can tee the whole
output into a log file, so long builds show a status line and keep the full log. Streamed
output is kept in memory only as a bounded tail (``TAIL_LINES``) for error reports: a Bazel
build or a ``logcat`` followed for hours must not grow without limit; the log file has it all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

from mobilebuild import console
from mobilebuild.errors import CommandError, ToolchainError, format_argv

# Lines of streamed output kept for the result and error reports (the last ones).
TAIL_LINES = 2000


@dataclass
class Result:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + (("\n" + self.stderr) if self.stderr else "")


def which(program: str, path: str | None = None) -> str | None:
    return shutil.which(program, path=path)


def run(
    argv: Sequence[str | os.PathLike],
    *,
    cwd: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = None,
    on_line: Callable[[str], None] | None = None,
    log_path: str | os.PathLike | None = None,
    hint: str | None = None,
) -> Result:
    """Run ``argv`` (never through a shell).

    Without ``on_line`` the output is captured whole. With ``on_line`` stdout and stderr are
    merged and every line is passed to ``on_line`` as it arrives (and written to ``log_path``);
    the result then holds only the last ``TAIL_LINES`` lines.
    """
    args = [str(a) for a in argv]
    full_env = dict(os.environ if env is None else env)
    if extra_env:
        full_env.update(extra_env)
    where = f" (in {cwd})" if cwd else ""
    console.detail(f"$ {format_argv(args)}{where}")
    try:
        if on_line is None and log_path is None:
            proc = subprocess.run(
                args,
                cwd=cwd,
                env=full_env,
                input=input,
                capture_output=True,
                text=True,
                errors="replace",
                timeout=timeout,
                stdin=None if input is not None else subprocess.DEVNULL,
            )
            result = Result(args, proc.returncode, proc.stdout, proc.stderr)
        else:
            result = _run_streaming(args, cwd, full_env, on_line, log_path, timeout, input)
    except FileNotFoundError as exc:
        raise ToolchainError(
            f"program not found: {args[0]}",
            hint or "install it or put it on PATH (`mobilebuild doctor` shows what is missing)",
        ) from exc
    except subprocess.TimeoutExpired as exc:
        raise CommandError(args, -1, str(exc.output or ""), message=f"command timed out after {timeout} s: {format_argv(args)}") from exc
    if check and result.returncode != 0:
        raise CommandError(
            args,
            result.returncode,
            result.output,
            hint=hint,
            log_path=str(log_path) if log_path else None,
        )
    return result


def _run_streaming(args, cwd, env, on_line, log_path, timeout, input: str | None = None) -> Result:
    lines: deque[str] = deque(maxlen=TAIL_LINES)
    log = open(log_path, "w", encoding="utf-8", errors="replace") if log_path else None
    try:
        proc = subprocess.Popen(
            args,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        try:
            if input is not None:
                # Answers given up front (licence prompts); a program that reads fewer is fine.
                assert proc.stdin is not None
                try:
                    proc.stdin.write(input)
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line)
                if log:
                    log.write(line)
                    log.flush()
                if on_line:
                    on_line(line.rstrip("\n"))
            proc.wait(timeout=timeout)
        except BaseException:
            # Ctrl-C or a callback error: stop the child too, then let the caller decide.
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
            raise
    finally:
        if log:
            log.close()
    return Result(args, proc.returncode, "".join(lines), "")


def is_executable(path: str | os.PathLike) -> bool:
    p = Path(path)
    return p.is_file() and os.access(p, os.X_OK)
