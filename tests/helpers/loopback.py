"""Test servers that run as our child process on 127.0.0.1 (nginx as a Bazel cache, a private
sshd): a free port, waiting until the server listens, stopping it by pid."""

from __future__ import annotations

import socket
import subprocess
import time
from typing import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LoopbackServer:
    """Base of the test servers: ``proc`` listens on 127.0.0.1:``port`` once started."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    def wait_listening(self, name: str, exit_detail: Callable[[], str], timeout: float = 15) -> None:
        """Return once the port accepts connections; raise with ``exit_detail()`` if the server died."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited: {exit_detail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{name} did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
