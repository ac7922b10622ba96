"""A private OpenSSH server on 127.0.0.1 for the Raspberry Pi over-ssh flow.

Generated host key, one authorized client key, config/pid/log in a temp dir, a free high port;
runs in the foreground (``-D``) as our child and is stopped by pid. The client side is the real
``ssh``/``scp`` with the options ``client_options()`` returns (key, no known_hosts prompts).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
from pathlib import Path

from helpers.loopback import LoopbackServer

SSHD = "/usr/sbin/sshd"

_CONFIG = """Port {port}
ListenAddress 127.0.0.1
HostKey {dir}/host_key
PidFile {dir}/sshd.pid
AuthorizedKeysFile {dir}/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
Subsystem sftp internal-sftp
"""


def unavailable_reason() -> str | None:
    for prog in (SSHD, shutil.which("ssh"), shutil.which("scp"), shutil.which("ssh-keygen")):
        if not prog or not os.access(prog, os.X_OK):
            return "openssh-server/client not installed (sshd, ssh, scp, ssh-keygen needed)"
    if not os.path.isdir("/run/sshd"):
        if os.geteuid() != 0:
            return "sshd needs its privilege-separation dir /run/sshd, which only root can create here"
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    return None


class PrivateSshd(LoopbackServer):
    def __init__(self, directory: Path):
        super().__init__()
        self.dir = Path(directory)
        self.user = getpass.getuser()

    @property
    def host(self) -> str:
        return f"{self.user}@127.0.0.1"

    @property
    def client_key(self) -> Path:
        return self.dir / "client_key"

    def client_options(self) -> list[str]:
        return [
            "-i", str(self.client_key),
            "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={self.dir / 'known_hosts'}",
            "-o", "LogLevel=ERROR",
        ]

    def start(self) -> "PrivateSshd":
        for name in ("host_key", "client_key"):
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(self.dir / name)],
                check=True, capture_output=True,
            )
        auth = self.dir / "authorized_keys"
        auth.write_text((self.dir / "client_key.pub").read_text())
        auth.chmod(0o600)
        conf = self.dir / "sshd_config"
        conf.write_text(_CONFIG.format(port=self.port, dir=self.dir))
        self.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=open(self.dir / "sshd.log", "wb"),
        )
        self.wait_listening("sshd", lambda: (self.dir / "sshd.log").read_text(errors="replace"))
        return self
