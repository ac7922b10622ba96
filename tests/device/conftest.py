"""The real adb server on a private port, and simulated devices attached to it over TCP."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from helpers.adbsim import AdbServer, SimulatedDevice

ADB = shutil.which("adb") or "/usr/bin/adb"


@pytest.fixture(scope="session")
def adb_server():
    server = AdbServer(ADB).start()
    yield server
    server.stop()
    shutil.rmtree(server.home, ignore_errors=True)


@pytest.fixture(autouse=True)
def _adb_env(adb_server, monkeypatch):
    """Every adb our code runs talks to the test server; no device survives a test."""
    monkeypatch.setenv("ANDROID_ADB_SERVER_PORT", str(adb_server.port))
    yield
    adb_server.run("disconnect")


@pytest.fixture
def attach(adb_server):
    """attach(**SimulatedDevice options) -> a device the adb server lists (state as asked)."""
    devices: list[SimulatedDevice] = []
    pending: list[subprocess.Popen] = []

    def _attach(**options) -> SimulatedDevice:
        device = SimulatedDevice(**options)
        devices.append(device)
        if device.mode == "unresponsive":
            # `adb connect` waits 10 s for a handshake that never comes; the server lists the
            # transport as offline meanwhile, which is all a test needs.
            pending.append(
                subprocess.Popen([ADB, "connect", device.serial], env=adb_server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            assert adb_server.wait_state(device.serial, "offline"), adb_server.run("devices").stdout
            return device
        answer = adb_server.attach(device)
        wanted = "unauthorized" if device.mode == "unauthorized" else "device"
        assert adb_server.wait_state(device.serial, wanted), answer
        return device

    yield _attach
    for device in devices:
        adb_server.detach(device)
        device.close()
    for proc in pending:
        proc.kill()
        proc.wait()


@pytest.fixture
def apk(tmp_path):
    """APK-shaped bytes (the simulated package manager does not parse them)."""
    path = tmp_path / "tensorflow_demo.apk"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 1200)
    return path
