"""The adb server port held by a program that is not an adb server: said at once, with who holds
it, instead of adb's silent one-minute wait."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest


@pytest.fixture
def stranger(monkeypatch):
    """A TCP listener that accepts and never answers (as a hung or foreign service would)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    held = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    port = srv.getsockname()[1]
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(port))
    yield port
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_devices_says_who_holds_the_port(cli, stranger):
    start = time.monotonic()
    r = cli("devices")
    took = time.monotonic() - start
    assert r.code == 1, r.output
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, r.stderr
    assert f"port {stranger} is held by pid {os.getpid()}" in errors[0]
    assert "not an adb server" in errors[0] and "did not answer" in errors[0]
    assert f"ANDROID_ADB_SERVER_PORT={stranger + 1}" in r.stderr
    assert took < 30, f"{took:.1f} s: adb's own wait is 60 s"


def test_a_real_adb_server_passes_the_probe(adb_server):
    from mobilebuild.toolchain import adb

    adb.check_server_port(adb_server.port)  # no error


def test_nobody_listening_is_fine():
    from mobilebuild.toolchain import adb

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    adb.check_server_port(port)  # adb would start its server there
