"""nginx-light as a Bazel HTTP remote cache on 127.0.0.1 (WebDAV PUT into a temp dir).

Bazel's HTTP cache protocol is plain GET/PUT of ``/ac/<hash>`` and ``/cas/<hash>``; nginx's
``dav_methods PUT`` with ``create_full_put_path`` stores them. Everything (config, pid, logs,
temp dirs, the cache root) lives in a temp prefix; the server runs in the foreground as our
child and is stopped by pid.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from helpers.loopback import LoopbackServer

NGINX = "/usr/sbin/nginx"

_CONF = """daemon off;
master_process on;
worker_processes 1;
{user}pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log;
events {{ worker_connections 64; }}
http {{
  access_log {prefix}/logs/access.log;
  client_body_temp_path {prefix}/tmp/body;
  proxy_temp_path {prefix}/tmp/proxy;
  fastcgi_temp_path {prefix}/tmp/fastcgi;
  uwsgi_temp_path {prefix}/tmp/uwsgi;
  scgi_temp_path {prefix}/tmp/scgi;
  server {{
    listen 127.0.0.1:{port};
    root {prefix}/cache;
    location / {{
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 0;
    }}
  }}
}}
"""


def nginx_path() -> str | None:
    return NGINX if os.access(NGINX, os.X_OK) else shutil.which("nginx")


class NginxCache(LoopbackServer):
    def __init__(self, prefix: Path):
        super().__init__()
        self.prefix = Path(prefix)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def root(self) -> Path:
        return self.prefix / "cache"

    def start(self) -> "NginxCache":
        for d in ("logs", "tmp", "cache"):
            (self.prefix / d).mkdir(parents=True, exist_ok=True)
        # As root nginx's workers would drop to 'nobody', who cannot write our temp dir.
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf = self.prefix / "nginx.conf"
        conf.write_text(_CONF.format(user=user, prefix=self.prefix, port=self.port))
        self.proc = subprocess.Popen(
            [nginx_path(), "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "logs/error.log")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.wait_listening("nginx", lambda: self.proc.stderr.read().decode(errors="replace"))
        return self

    def stored_entries(self) -> list[str]:
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob("*") if p.is_file())
