"""Run the CLI in-process (fast: TensorFlow stays imported across tests) or as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def run_in_process(capsys, *args: str) -> CliResult:
    """Exactly what `mobilebuild ARGS` does, minus the process: same arg hoisting, same
    error-to-exit-code mapping (mobilebuild.cli.run)."""
    from mobilebuild.cli import hoist_global_flags, run

    capsys.readouterr()  # drop anything printed before
    code = run(hoist_global_flags([str(a) for a in args]))
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def run_subprocess(*args: str, env: dict | None = None, cwd=None, timeout: float = 600, input: str | None = None) -> CliResult:
    full_env = dict(os.environ)
    full_env.setdefault("NO_COLOR", "1")
    if env:
        full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-m", "mobilebuild", *[str(a) for a in args]],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd,
        timeout=timeout,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
