"""Fixtures for the downloader, deps, setup and doctor tests.

The network side is a real HTTP server on 127.0.0.1 (tests/helpers/httpserver.py) serving
archives built here. Backoff waits are made tiny through the downloader's own environment
knobs (MOBILEBUILD_RETRY_BASE / _MAX), so retry tests take milliseconds.
"""

from __future__ import annotations

import pytest

from helpers.httpserver import FaultyServer


@pytest.fixture(autouse=True)
def _fast_retries(monkeypatch):
    monkeypatch.setenv("MOBILEBUILD_RETRY_BASE", "0.01")
    monkeypatch.setenv("MOBILEBUILD_RETRY_MAX", "0.05")
    monkeypatch.setenv("MOBILEBUILD_HTTP_TIMEOUT", "5")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("MOBILEBUILD_CONFIG", raising=False)
    monkeypatch.delenv("MOBILEBUILD_PINS", raising=False)


@pytest.fixture
def server():
    with FaultyServer() as srv:
        yield srv
