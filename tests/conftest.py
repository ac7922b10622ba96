"""Fixtures for every test area. Area-specific fixtures live in tests/<area>/conftest.py."""

from __future__ import annotations

import pytest

from helpers.cli import run_in_process


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path_factory, monkeypatch):
    """Each test gets its own cache/data dir and no colour; nothing touches the real home."""
    base = tmp_path_factory.mktemp("mbhome")
    monkeypatch.setenv("MOBILEBUILD_CACHE", str(base / "cache"))
    monkeypatch.setenv("MOBILEBUILD_HOME", str(base / "home"))
    monkeypatch.setenv("MOBILEBUILD_USER_CONFIG", str(base / "user-config.toml"))
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("ANDROID_HOME", "ANDROID_SDK_ROOT", "ANDROID_NDK_HOME", "ANDROID_SERIAL"):
        monkeypatch.delenv(var, raising=False)
    from mobilebuild import console

    console.configure()
    yield
    console.configure()


@pytest.fixture
def cli(capsys):
    """cli("model", "inspect", path) -> CliResult(code, stdout, stderr), in-process."""

    def _run(*args):
        return run_in_process(capsys, *args)

    return _run
