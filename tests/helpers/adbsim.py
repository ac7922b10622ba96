"""A simulated Android device speaking the ADB transport protocol, for the real adb server.

No phone exists on a CI machine, so tests attach this to the real adb server
(`adb connect 127.0.0.1:PORT`) exactly as a phone doing Wi-Fi debugging would attach: the adb
client and server are the real Debian programs; only the far end of the TCP connection (adbd)
is simulated. That keeps every layer of ours (argv, server port, output parsing) under test.

What is implemented (the parts of adbd that `adb devices/shell/install/push/logcat/uninstall`
use):

* transport messages: 24-byte little-endian header (command, arg0, arg1, length, checksum,
  magic = command ^ 0xffffffff) + payload; CNXN, AUTH, OPEN, OKAY, WRTE, CLSE.
* handshake: the host sends CNXN; we answer with our own CNXN whose banner
  ``device::ro.product.name=..;ro.product.model=..;ro.product.device=..;features=..`` tells the
  host our features; or, for an *unauthorized* device, AUTH TOKEN (and a fresh token for every
  signature, never accepting the key: the user has not tapped "Allow"); or, for an *unresponsive*
  device, nothing at all (the host keeps it "offline").
* streams: OPEN -> OKAY or CLSE (unknown service); one WRTE in flight per stream, each
  acknowledged by OKAY (adb 29 has no delayed-ack feature); CLSE from either side.
* services: ``shell:`` (raw, no exit status, as on Android < 7) and ``shell,v2,...:`` (framed
  stdin/stdout/stderr/exit packets) when ``shell_v2`` is advertised; ``exec:`` (raw, used by
  the streamed install ``exec:cmd package install -S SIZE`` when ``cmd`` is advertised);
  ``sync:`` with STAT/STA2/LST2/LIST/SEND/RECV/QUIT (push for the legacy install path).
* a tiny shell: ``getprop``, ``pm install/uninstall/path``, ``cmd package ...``, ``am start``,
  ``logcat``, ``pidof``, ``ps``, ``rm``, ``echo``; ``export X=..; exec ...`` as adb's logcat sends it.

Scripting: ``install_outcomes`` is a queue of pm result lines (``"Failure [CODE: detail]"``)
consumed by successive installs (empty -> ``Success``); ``am_output`` replaces am's answer;
``logcat_lines`` are printed by logcat, which then stays open until the client goes
(``logcat_follow``) or ends; a callable among them is called with the device when logcat gets
there (e.g. to give the app a new pid, as a restart does). Everything received is recorded: ``services``, ``shell_commands``,
``installs`` (argv + APK bytes + path taken), ``pushed`` files, ``uninstalled``.
"""

from __future__ import annotations

import os
import queue
import shlex
import socket
import struct
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from helpers.loopback import free_port

# --- transport constants (AOSP adb protocol.txt) -------------------------------------------

A_CNXN = 0x4E584E43
A_AUTH = 0x48545541
A_OPEN = 0x4E45504F
A_OKAY = 0x59414B4F
A_CLSE = 0x45534C43
A_WRTE = 0x45545257
A_STLS = 0x534C5453

A_VERSION = 0x01000001  # skip-checksum version; adb 29 speaks it too
MAX_PAYLOAD = 256 * 1024

AUTH_TOKEN, AUTH_SIGNATURE, AUTH_RSAPUBLICKEY = 1, 2, 3

# shell protocol v2 packet ids
SH_STDIN, SH_STDOUT, SH_STDERR, SH_EXIT, SH_CLOSE_STDIN, SH_WINSIZE = 0, 1, 2, 3, 4, 5

NAMES = {A_CNXN: "CNXN", A_AUTH: "AUTH", A_OPEN: "OPEN", A_OKAY: "OKAY", A_CLSE: "CLSE", A_WRTE: "WRTE", A_STLS: "STLS"}

# The features of an Android 9 adbd, minus those we do not implement (abb/abb_exec: the
# client would then install through `abb_exec:`; apex, remount_shell: irrelevant here).
MODERN_FEATURES = ("shell_v2", "cmd", "stat_v2", "ls_v2", "fixed_push_mkdir", "fixed_push_symlink_timestamp")
# Android 5/6: no features at all -> push + `pm install` over raw `shell:` (exit status lost).
LEGACY_FEATURES: tuple[str, ...] = ()

S_IFDIR, S_IFREG = 0o040000, 0o100000


def _checksum(data: bytes) -> int:
    return sum(data) & 0xFFFFFFFF


def pack_message(command: int, arg0: int, arg1: int, data: bytes = b"") -> bytes:
    header = struct.pack("<6I", command, arg0, arg1, len(data), _checksum(data), command ^ 0xFFFFFFFF)
    return header + data


@dataclass
class InstallRecord:
    """One install the device saw: how it came (``stream`` or ``push``), the pm argv, the APK."""

    via: str
    argv: list[str]
    apk: bytes
    result: str


@dataclass
class ShellResult:
    stdout: str = ""
    stderr: str = ""
    exit_code: int = 0


class _StreamClosed(Exception):
    pass


class _Stream:
    """One adb stream between the host (remote_id) and us (local_id)."""

    def __init__(self, conn: "_Connection", local_id: int, remote_id: int, service: str):
        self.conn = conn
        self.local_id = local_id
        self.remote_id = remote_id
        self.service = service
        self.inbox: "queue.Queue[bytes | None]" = queue.Queue()
        self.buffer = b""
        self.acked = threading.Event()
        self.acked.set()
        self.closed = threading.Event()

    # -- reading what the host wrote ------------------------------------------------------
    def read(self, n: int) -> bytes:
        """Exactly n bytes, or _StreamClosed when the host closed first."""
        while len(self.buffer) < n:
            chunk = self.inbox.get()
            if chunk is None:
                self.inbox.put(None)  # stay closed for later readers
                raise _StreamClosed()
            self.buffer += chunk
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data

    def read_some(self, timeout: float | None = None) -> bytes | None:
        """What is buffered or the next chunk; None at close; b"" on timeout."""
        if self.buffer:
            data, self.buffer = self.buffer, b""
            return data
        try:
            chunk = self.inbox.get(timeout=timeout)
        except queue.Empty:
            return b""
        if chunk is None:
            self.inbox.put(None)
        return chunk

    # -- writing to the host --------------------------------------------------------------
    def write(self, data: bytes) -> None:
        limit = self.conn.max_payload
        for start in range(0, len(data), limit):
            if self.closed.is_set():
                raise _StreamClosed()
            # adb 29 allows one unacknowledged WRTE per stream.
            while not self.acked.wait(0.2):
                if self.closed.is_set() or self.conn.dead.is_set():
                    raise _StreamClosed()
            self.acked.clear()
            self.conn.send(A_WRTE, self.local_id, self.remote_id, data[start : start + limit])

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.conn.send(A_CLSE, self.local_id, self.remote_id)
        self.conn.streams.pop(self.local_id, None)


class _Connection:
    """One TCP connection from the adb server: the transport of one device."""

    def __init__(self, device: "SimulatedDevice", sock: socket.socket):
        self.device = device
        self.sock = sock
        self.lock = threading.Lock()
        self.streams: dict[int, _Stream] = {}
        self.next_id = 1
        self.max_payload = MAX_PAYLOAD
        self.dead = threading.Event()
        self.online = False

    def send(self, command: int, arg0: int, arg1: int, data: bytes = b"") -> None:
        if self.dead.is_set():
            return
        with self.lock:
            try:
                self.sock.sendall(pack_message(command, arg0, arg1, data))
            except OSError:
                self.dead.set()

    def _recv_exact(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("host closed the connection")
            data += chunk
        return data

    def serve(self) -> None:
        try:
            while not self.dead.is_set():
                header = self._recv_exact(24)
                command, arg0, arg1, length, _crc, magic = struct.unpack("<6I", header)
                if magic != command ^ 0xFFFFFFFF:
                    raise ConnectionError("bad magic")
                data = self._recv_exact(length) if length else b""
                self.device.log.append((NAMES.get(command, hex(command)), arg0, arg1, data[:200]))
                self.handle(command, arg0, arg1, data)
        except (ConnectionError, OSError):
            pass
        finally:
            self.dead.set()
            for stream in list(self.streams.values()):
                stream.closed.set()
                stream.inbox.put(None)
            try:
                self.sock.close()
            except OSError:
                pass

    def handle(self, command: int, arg0: int, arg1: int, data: bytes) -> None:
        dev = self.device
        if command == A_CNXN:
            self.max_payload = max(1024, min(MAX_PAYLOAD, arg1))
            dev.host_banner = data.decode("utf-8", "replace")
            if dev.mode == "unresponsive":
                return  # a hung adbd: the host keeps the transport offline
            if dev.mode == "unauthorized":
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
                return
            self.go_online()
        elif command == A_AUTH:
            if arg0 == AUTH_SIGNATURE:
                # The signature is of a key we do not know (the user never allowed it): ask again.
                self.send(A_AUTH, AUTH_TOKEN, 0, os.urandom(20))
            elif arg0 == AUTH_RSAPUBLICKEY:
                dev.offered_keys.append(data)  # the phone would now show "Allow USB debugging?"
        elif command == A_OPEN:
            if not self.online:
                return
            service = data.rstrip(b"\0").decode("utf-8", "replace")
            local_id = self.next_id
            self.next_id += 1
            stream = _Stream(self, local_id, arg0, service)
            self.streams[local_id] = stream
            dev.services.append(service)
            threading.Thread(target=dev._run_service, args=(stream,), daemon=True).start()
        elif command == A_OKAY:
            stream = self.streams.get(arg1)
            if stream:
                stream.acked.set()
        elif command == A_WRTE:
            stream = self.streams.get(arg1)
            if stream is None:
                self.send(A_CLSE, 0, arg0)
                return
            stream.inbox.put(data)
            self.send(A_OKAY, stream.local_id, stream.remote_id)
        elif command == A_CLSE:
            stream = self.streams.pop(arg1, None)
            if stream:
                stream.closed.set()
                stream.inbox.put(None)

    def go_online(self) -> None:
        self.online = True
        self.send(A_CNXN, A_VERSION, MAX_PAYLOAD, self.device.banner().encode())


class SimulatedDevice:
    """An adbd on 127.0.0.1:<port>; ``serial`` is what `adb devices` shows once connected."""

    def __init__(
        self,
        *,
        model: str = "Pixel 3",
        product: str = "blueline",
        device: str = "blueline",
        abi: str = "arm64-v8a",
        abilist: str | None = None,
        sdk: int = 28,
        features: tuple[str, ...] = MODERN_FEATURES,
        mode: str = "online",
        install_outcomes: list[str] | None = None,
        am_output: str | None = None,
        logcat_lines: list[str] | None = None,
        logcat_follow: bool = True,
        app_pid: int | None = 4321,
        installed: set[str] | None = None,
        package: str = "org.tensorflow.demo",
        foreign_signature: bool = False,
    ):
        self.mode = mode  # online | unauthorized | unresponsive
        self.features = tuple(features)
        self.props = {
            "ro.product.model": model,
            "ro.product.name": product,
            "ro.product.device": device,
            "ro.product.cpu.abi": abi,
            "ro.product.cpu.abilist": abilist if abilist is not None else _default_abilist(abi),
            "ro.build.version.sdk": str(sdk),
            "ro.build.version.release": {21: "5.0", 22: "5.1", 23: "6.0", 24: "7.0", 25: "7.1", 26: "8.0", 27: "8.1", 28: "9"}.get(sdk, "10"),
        }
        self.install_outcomes = list(install_outcomes or [])
        self.am_output = am_output
        self.logcat_lines = list(logcat_lines or [])
        self.logcat_follow = logcat_follow
        self.app_pid = app_pid
        self.installed: set[str] = set(installed or ())
        # The package every APK installs as; ``foreign_signature``: the installed copy of it is
        # signed with another key, so updates fail until it is uninstalled (as pm does).
        self.package = package
        self.foreign_signature = foreign_signature
        # what the device received
        self.services: list[str] = []
        self.shell_commands: list[str] = []
        self.installs: list[InstallRecord] = []
        self.pushed: dict[str, bytes] = {}
        self.uninstalled: list[str] = []
        self.offered_keys: list[bytes] = []
        self.host_banner = ""
        self.log: list[tuple] = []
        self.handlers: dict[str, Callable[[list[str]], ShellResult]] = {}

        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(4)
        self.port = self._listener.getsockname()[1]
        self.serial = f"127.0.0.1:{self.port}"
        self._connections: list[_Connection] = []
        self._stopped = threading.Event()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- lifecycle ------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Connection(self, sock)
            self._connections.append(conn)
            threading.Thread(target=conn.serve, daemon=True).start()

    def close(self) -> None:
        self._stopped.set()
        try:
            self._listener.close()
        except OSError:
            pass
        for conn in self._connections:
            conn.dead.set()
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
                conn.sock.close()
            except OSError:
                pass

    def banner(self) -> str:
        p = self.props
        return (
            f"device::ro.product.name={p['ro.product.name']};ro.product.model={p['ro.product.model']};"
            f"ro.product.device={p['ro.product.device']};features={','.join(self.features)}"
        )

    # -- services -------------------------------------------------------------------------
    def _run_service(self, stream: _Stream) -> None:
        service = stream.service
        conn = stream.conn
        try:
            if service.startswith("shell") and ":" in service:
                opts, command = service.split(":", 1)
                args = opts.split(",")[1:]
                v2 = "v2" in args and "shell_v2" in self.features
                if not command:
                    conn.send(A_CLSE, 0, stream.remote_id)  # no interactive shells here
                    return
                conn.send(A_OKAY, stream.local_id, stream.remote_id)
                self._shell(stream, command, v2)
            elif service.startswith("exec:"):
                conn.send(A_OKAY, stream.local_id, stream.remote_id)
                self._exec(stream, service[len("exec:") :])
            elif service == "sync:":
                conn.send(A_OKAY, stream.local_id, stream.remote_id)
                self._sync(stream)
            else:
                conn.send(A_CLSE, 0, stream.remote_id)  # unknown service: refuse the OPEN
                conn.streams.pop(stream.local_id, None)
                return
        except _StreamClosed:
            pass
        stream.close()

    def _shell(self, stream: _Stream, command: str, v2: bool) -> None:
        self.shell_commands.append(command)

        def out(text: str, fd: int = SH_STDOUT) -> None:
            if not text:
                return
            data = text.encode()
            if v2:
                stream.write(struct.pack("<BI", fd, len(data)) + data)
            else:
                # raw shell: stdout and stderr arrive mixed; adbd before Android 7 ran every
                # `shell:` command on a pty, whose line discipline turns \n into \r\n
                if int(self.props["ro.build.version.sdk"]) < 24:
                    data = data.replace(b"\n", b"\r\n")
                stream.write(data)

        result = self._interpret(command, out, stream)
        if result is not None:
            out(result.stdout)
            out(result.stderr, SH_STDERR)
            if v2:
                stream.write(struct.pack("<BIB", SH_EXIT, 1, result.exit_code & 0xFF))

    def _exec(self, stream: _Stream, command: str) -> None:
        self.shell_commands.append(command)
        argv = shlex.split(command)
        if argv[:3] == ["cmd", "package", "install"]:
            size = int(argv[argv.index("-S") + 1]) if "-S" in argv else 0
            apk = stream.read(size)
            line = self._next_install_result(argv[2:], apk)
            self.installs.append(InstallRecord("stream", argv, apk, line))
            stream.write((line + "\n").encode())
            return
        result = self._interpret(command, lambda text, fd=SH_STDOUT: stream.write(text.encode()), stream)
        if result is not None:
            stream.write((result.stdout + result.stderr).encode())

    def _next_install_result(self, pm_argv: list[str], apk: bytes) -> str:
        if not apk.startswith(b"PK\x03\x04"):
            # what PackageParser says about a file that is not a zip
            return "Failure [INSTALL_PARSE_FAILED_NOT_APK: Failed to parse /data/app/vmdl1.tmp/base.apk: not a zip]"
        if self.foreign_signature and self.package in self.installed:
            return (
                f"Failure [INSTALL_FAILED_UPDATE_INCOMPATIBLE: Package {self.package} "
                "signatures do not match the previously installed version; ignoring!]"
            )
        line = self.install_outcomes.pop(0) if self.install_outcomes else "Success"
        if line.startswith("Success"):
            self.installed.add(self.package)
            self.foreign_signature = False
        return line

    # the tiny shell --------------------------------------------------------------------------
    def _interpret(self, command: str, out, stream: _Stream) -> ShellResult | None:
        """Run ``command``; either return its whole result or stream it through ``out``."""
        lexer = shlex.shlex(command, posix=True, punctuation_chars=";")
        lexer.whitespace_split = True
        words = list(lexer)
        commands: list[list[str]] = [[]]
        for word in words:
            if word == ";":
                commands.append([])
            elif word[:1] in "<>" or word[:2] in ("2>", "1>"):
                continue  # redirections (`rm ... </dev/null`): nothing to redirect here
            else:
                commands[-1].append(word)
        result = ShellResult()
        for argv in commands:
            if not argv:
                continue
            if argv[0] == "export":
                continue
            if argv[0] == "exec":
                argv = argv[1:]
            if argv[0] == "logcat":
                return self._logcat(argv, out, stream)
            one = self._command(argv)
            result = ShellResult(result.stdout + one.stdout, result.stderr + one.stderr, one.exit_code)
        return result

    def _command(self, argv: list[str]) -> ShellResult:
        name = argv[0]
        if name in self.handlers:
            return self.handlers[name](argv)
        if name == "getprop":
            if len(argv) == 1:
                return ShellResult("".join(f"[{k}]: [{v}]\n" for k, v in sorted(self.props.items())))
            return ShellResult(self.props.get(argv[1], "") + "\n")
        if name == "pm" or (name == "cmd" and argv[1:2] == ["package"]):
            sub = argv[1:] if name == "pm" else argv[2:]
            return self._pm(sub)
        if name == "am":
            return self._am(argv[1:])
        if name == "pidof":
            if int(self.props["ro.build.version.sdk"]) < 24:  # toybox pidof came with Android 7
                return ShellResult(stderr="/system/bin/sh: pidof: not found\n", exit_code=127)
            pkg = argv[1] if len(argv) > 1 else ""
            if self.app_pid and pkg in self.installed:
                return ShellResult(f"{self.app_pid}\n")
            return ShellResult(exit_code=1)
        if name == "ps":
            # toolbox ps of Android 5/6
            lines = ["USER     PID   PPID  VSIZE  RSS     WCHAN    PC        NAME", "root      1     0     8904   788   ffffffff 00000000 S /init"]
            if self.app_pid and self.package in self.installed:
                lines.append(f"u0_a85    {self.app_pid}  266   1520340 98420 ffffffff 00000000 S {self.package}")
            return ShellResult("\n".join(lines) + "\n")
        if name == "rm":
            for path in argv[1:]:
                if not path.startswith("-"):
                    self.pushed.pop(path, None)
            return ShellResult()
        if name == "echo":
            return ShellResult(" ".join(argv[1:]) + "\n")
        return ShellResult(stderr=f"/system/bin/sh: {name}: not found\n", exit_code=127)

    def _pm(self, sub: list[str]) -> ShellResult:
        if not sub:
            return ShellResult(stderr="usage: pm ...\n", exit_code=1)
        if sub[0] == "install":
            path = sub[-1]
            apk = self.pushed.get(path)
            if apk is None:
                return ShellResult(f"\tpkg: {path}\nFailure [INSTALL_FAILED_INVALID_URI]\n", exit_code=1)
            if "-g" in sub and int(self.props["ro.build.version.sdk"]) < 23:
                # pm before Android 6 has no runtime permissions and no -g
                return ShellResult("Error: Unknown option: -g\nusage: pm install [-lrtsfd] [-i PACKAGE] PATH\n", exit_code=1)
            line = self._next_install_result(sub, apk)
            self.installs.append(InstallRecord("push", ["pm", *sub], apk, line))
            ok = line.startswith("Success")
            return ShellResult(f"\tpkg: {path}\n{line}\n", exit_code=0 if ok else 1)
        if sub[0] == "uninstall":
            pkg = sub[-1]
            self.uninstalled.append(pkg)
            if pkg in self.installed:
                self.installed.discard(pkg)
                return ShellResult("Success\n")
            return ShellResult("Failure [DELETE_FAILED_INTERNAL_ERROR]\n", exit_code=1)
        if sub[0] == "path":
            pkg = sub[-1]
            if pkg in self.installed:
                return ShellResult(f"package:/data/app/{pkg}-1/base.apk\n")
            return ShellResult(exit_code=1)
        return ShellResult(stderr=f"Unknown command: {sub[0]}\n", exit_code=1)

    def _am(self, sub: list[str]) -> ShellResult:
        if sub[:1] != ["start"]:
            return ShellResult(stderr="Error: unknown command\n", exit_code=1)
        component = sub[sub.index("-n") + 1] if "-n" in sub else ""
        if self.am_output is not None:
            return ShellResult(self.am_output)
        pkg = component.split("/")[0]
        if pkg not in self.installed:
            cls = component.split("/", 1)[-1]
            cls = pkg + cls if cls.startswith(".") else cls
            return ShellResult(
                f"Starting: Intent {{ cmp={component} }}\n"
                f"Error type 3\nError: Activity class {{{pkg}/{cls}}} does not exist.\n"
            )
        return ShellResult(f"Starting: Intent {{ cmp={component} }}\n")

    def _logcat(self, argv: list[str], out, stream: _Stream) -> ShellResult:
        for line in self.logcat_lines:
            if callable(line):
                line(self)  # a change of the device's state at this point of the log (an app restart)
                continue
            out(line + "\n")
        if not self.logcat_follow:
            return ShellResult()  # logcat -d: the buffer, then exit 0
        # follow: like the real logcat, block until the client goes away
        while stream.read_some(timeout=0.5) is not None:
            if stream.closed.is_set() or stream.conn.dead.is_set():
                break
        raise _StreamClosed()

    # -- sync: -------------------------------------------------------------------------------
    def _sync(self, stream: _Stream) -> None:
        while True:
            header = stream.read(8)
            ident, length = header[:4], struct.unpack("<I", header[4:])[0]
            if ident == b"QUIT":
                return
            payload = stream.read(length)
            path = payload.decode("utf-8", "replace")
            if ident == b"STAT":
                mode, size = self._stat(path)
                stream.write(b"STAT" + struct.pack("<III", mode, size, int(time.time()) if mode else 0))
            elif ident in (b"STA2", b"LST2"):
                mode, size = self._stat(path)
                error = 0 if mode else 2  # ENOENT
                now = int(time.time()) if mode else 0
                stream.write(ident + struct.pack("<IQQIIIIQqqq", error, 0, 0, mode, 1 if mode else 0, 0, 0, size, now, now, now))
            elif ident == b"LIST":
                stream.write(b"DONE" + struct.pack("<IIII", 0, 0, 0, 0))
            elif ident == b"SEND":
                target = path.rsplit(",", 1)[0]
                data = b""
                while True:
                    chunk_header = stream.read(8)
                    cid, clen = chunk_header[:4], struct.unpack("<I", chunk_header[4:])[0]
                    if cid == b"DATA":
                        data += stream.read(clen)
                    elif cid == b"DONE":
                        break
                    else:
                        stream.write(b"FAIL" + struct.pack("<I", 12) + b"bad sync id!")
                        return
                self.pushed[target] = data
                stream.write(b"OKAY" + struct.pack("<I", 0))
            elif ident == b"RECV":
                data = self.pushed.get(path)
                if data is None:
                    msg = b"No such file or directory"
                    stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                else:
                    for start in range(0, len(data), 64 * 1024):
                        piece = data[start : start + 64 * 1024]
                        stream.write(b"DATA" + struct.pack("<I", len(piece)) + piece)
                    stream.write(b"DONE" + struct.pack("<I", 0))
            else:
                msg = b"unknown sync request"
                stream.write(b"FAIL" + struct.pack("<I", len(msg)) + msg)
                return

    def _stat(self, path: str) -> tuple[int, int]:
        if path.rstrip("/") in ("", "/data", "/data/local", "/data/local/tmp", "/sdcard", "/sdcard/tmp"):
            return S_IFDIR | 0o771, 4096
        if path in self.pushed:
            return S_IFREG | 0o644, len(self.pushed[path])
        return 0, 0


def _default_abilist(abi: str) -> str:
    return {
        "arm64-v8a": "arm64-v8a,armeabi-v7a,armeabi",
        "armeabi-v7a": "armeabi-v7a,armeabi",
        "x86_64": "x86_64,x86",
        "x86": "x86",
    }.get(abi, abi)


# --- the real adb server, on a port of its own -------------------------------------------------




class AdbServer:
    """The real adb server on a private port, with its own HOME (its RSA key stays there)."""

    def __init__(self, adb: str = "/usr/bin/adb", port: int | None = None):
        self.adb = adb
        self.port = port or free_port()
        self.home = Path(tempfile.mkdtemp(prefix="adbhome-"))
        self.env = dict(os.environ, ANDROID_ADB_SERVER_PORT=str(self.port), HOME=str(self.home))
        self.env.pop("ANDROID_SERIAL", None)

    def run(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run(
            [self.adb, *args], env=self.env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )

    def start(self) -> "AdbServer":
        proc = self.run("start-server", timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"adb start-server failed: {proc.stdout}{proc.stderr}")
        return self

    def stop(self) -> None:
        self.run("kill-server")

    def attach(self, device: SimulatedDevice, timeout: float = 15) -> str:
        """`adb connect` the device; return adb's answer ("connected to ..." / "failed to ...")."""
        proc = self.run("connect", device.serial, timeout=timeout)
        return (proc.stdout + proc.stderr).strip()

    def detach(self, device: SimulatedDevice) -> None:
        self.run("disconnect", device.serial)

    def state(self, serial: str) -> str:
        for line in self.run("devices").stdout.splitlines()[1:]:
            parts = line.split("\t")
            if parts[0] == serial and len(parts) > 1:
                return parts[1]
        return ""

    def wait_state(self, serial: str, wanted: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.state(serial) == wanted:
                return True
            time.sleep(0.1)
        return False
