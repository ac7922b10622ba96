"""BuildGrid as a real REAPI (gRPC) remote cache on 127.0.0.1.

``bgd server start CONFIG.yml`` with a disk storage, an LRU action cache and the action-cache,
cas and bytestream services of the default (empty-named) instance, so Bazel's
``--remote_cache=grpc://127.0.0.1:PORT`` needs no ``--remote_instance_name``. BuildGrid pins its
own grpcio/protobuf, so CI installs it into a venv of its own (.ci/run: /opt/mbci/bgd-venv);
the server runs in the foreground as our child and is stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers.loopback import LoopbackServer

BGD_VENV = "/opt/mbci/bgd-venv"

_CONFIG = """server:
  - !channel
    address: "127.0.0.1:{port}"
    insecure-mode: true
authorization:
  method: none
storages:
  - !disk-storage &cas
    path: {prefix}/cas
caches:
  - !lru-action-cache &ac
    storage: *cas
    max-cached-refs: 4096
    allow-updates: true
    cache-failed-actions: false
instances:
  - name: ""
    services:
      - !action-cache
        cache: *ac
      - !cas
        storage: *cas
      - !bytestream
        storage: *cas
"""


def bgd_path() -> str | None:
    """``bgd``: $MOBILEBUILD_TEST_BGD, CI's venv, else PATH."""
    for candidate in (os.environ.get("MOBILEBUILD_TEST_BGD"), f"{BGD_VENV}/bin/bgd"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("bgd")


class BuildGridCache(LoopbackServer):
    def __init__(self, prefix: Path):
        super().__init__()
        self.prefix = Path(prefix)

    @property
    def url(self) -> str:
        return f"grpc://127.0.0.1:{self.port}"

    def start(self) -> "BuildGridCache":
        (self.prefix / "cas").mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "buildgrid.yml"
        conf.write_text(_CONFIG.format(port=self.port, prefix=self.prefix))
        self.log = self.prefix / "bgd.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [bgd_path(), "server", "start", str(conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.prefix,
            )
        # The first start imports grpc, sqlalchemy and the protos: allow it a while.
        self.wait_listening("bgd", lambda: self.log.read_text(errors="replace")[-2000:], timeout=60)
        return self

    def stored_blobs(self) -> int:
        return sum(1 for p in (self.prefix / "cas").rglob("*") if p.is_file())
