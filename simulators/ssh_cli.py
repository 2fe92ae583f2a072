"""An SSH server (paramiko) giving a device CLI (PBX, codec): password login, shell and exec.

Each connection is served in its own thread. The host key is generated once into the work
directory and reused, so a client that pins it keeps trusting the simulator across restarts.
While `host_key_changed` is set the server presents a second, equally persistent key (as after
a device swap or a man in the middle); `disconnect` drops the TCP connection halfway through
a command's output.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.common import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

from simulators.codec import CodecDevice
from simulators.devices import line_noise
from simulators.errors import SimulatorError
from simulators.pbx import EXIT_COMMANDS, PbxDevice

CliDevice = PbxDevice | CodecDevice

logger = logging.getLogger(__name__)

ACCEPT_POLL_S = 0.5  # how often idle loops look at the stop flag
SESSION_SETUP_TIMEOUT_S = 10.0
_GONE = (paramiko.SSHException, OSError, EOFError)  # what a vanished client raises


def load_or_create_host_key(path: Path) -> paramiko.PKey:
    """The host key stored at path, generated (ECDSA P-256) on first use."""
    if path.exists():
        return paramiko.ECDSAKey.from_private_key_file(str(path))
    key = paramiko.ECDSAKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    key.write_private_key_file(str(tmp))
    tmp.chmod(0o600)
    tmp.replace(path)
    logger.info("generated SSH host key %s", path)
    return key


@dataclass
class _ChannelRequest:
    """What the client asked of one channel: a shell (with or without pty) or one command."""

    ready: threading.Event = field(default_factory=threading.Event)
    exec_command: str | None = None
    pty: bool = False


class _Session(paramiko.ServerInterface):
    """What one SSH connection may do: password login, sessions with a shell or exec."""

    def __init__(self, device: CliDevice) -> None:
        self.device = device
        self.channels: dict[int, _ChannelRequest] = {}

    def request(self, channel: paramiko.Channel) -> _ChannelRequest:
        """The request state of a channel."""
        return self.channels.setdefault(channel.get_id(), _ChannelRequest())

    def get_allowed_auths(self, username: str) -> str:
        """Only passwords, like the device."""
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        """Accept the configured user and password."""
        spec = self.device.spec
        if username == spec.username and password == spec.password:
            return AUTH_SUCCESSFUL
        logger.info("%s: failed login for %r", self.device.id, username)
        return AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        """Sessions only."""
        if kind == "session":
            self.channels[chanid] = _ChannelRequest()
            return OPEN_SUCCEEDED
        return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_pty_request(
        self,
        channel: paramiko.Channel,
        term: bytes,
        width: int,
        height: int,
        pixelwidth: int,
        pixelheight: int,
        modes: bytes,
    ) -> bool:
        """Accept a pty; with one, typed commands are echoed as a terminal would."""
        self.request(channel).pty = True
        return True

    def check_channel_shell_request(self, channel: paramiko.Channel) -> bool:
        """Start the interactive CLI."""
        self.request(channel).ready.set()
        return True

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        """Run one command and exit."""
        request = self.request(channel)
        request.exec_command = command.decode("utf-8", errors="replace")
        request.ready.set()
        return True


class _Dropped(Exception):
    """The `disconnect` condition cut the connection."""


class SshCliServer:
    """Listens on 127.0.0.1 and serves a device CLI to every connection in its own thread."""

    def __init__(self, device: CliDevice, host_key_path: Path) -> None:
        self.device = device
        self.host_key = load_or_create_host_key(host_key_path)
        # The key shown while `host_key_changed` is set; as persistent as the normal one.
        self.changed_host_key = load_or_create_host_key(
            host_key_path.with_name(host_key_path.name + "_changed")
        )
        self.port = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []
        self._transports: set[paramiko.Transport] = set()
        self._raw: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self, port: int) -> int:
        """Listen on 127.0.0.1:port (0: ephemeral); returns the bound port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            sock.close()
            raise SimulatorError(
                f"{self.device.id}: cannot listen on tcp 127.0.0.1:{port}: {exc.strerror or exc}"
            ) from None
        sock.listen(16)
        sock.settimeout(ACCEPT_POLL_S)
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        thread = threading.Thread(target=self._accept_loop, name=f"sim-ssh-{self.device.id}")
        thread.daemon = True
        thread.start()
        self._threads.append(thread)
        return self.port

    @property
    def sessions(self) -> int:
        """SSH connections open now."""
        with self._lock:
            return len(self._transports)

    def stop(self) -> None:
        """Stop accepting, close every session and wait for the threads."""
        self._stop.set()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked accept() on Linux
            self._sock.close()
        with self._lock:
            transports, raws = list(self._transports), list(self._raw)
        for transport in transports:
            transport.close()
        for raw in raws:
            raw.close()
        for thread in list(self._threads):
            thread.join(timeout=5)

    def _accept_loop(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            try:
                conn, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                break  # listening socket closed by stop()
            thread = threading.Thread(
                target=self._serve, args=(conn,), name=f"sim-ssh-{self.device.id}-{addr[1]}"
            )
            thread.daemon = True
            thread.start()
            with self._lock:
                self._threads = [t for t in self._threads if t.is_alive()]
                self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        if self.device.behaviour == "hang":
            self._hold(conn)
            return
        transport = paramiko.Transport(conn)
        with self._lock:
            self._transports.add(transport)
        try:
            self._session(transport)
        except (*_GONE, _Dropped) as exc:
            logger.debug("%s: session ended: %s", self.device.id, exc)
        finally:
            transport.close()
            with self._lock:
                self._transports.discard(transport)

    def _hold(self, conn: socket.socket) -> None:
        """Keep a TCP connection open without ever sending a byte (the `hang` condition)."""
        with self._lock:
            self._raw.add(conn)
        conn.settimeout(ACCEPT_POLL_S)
        try:
            while not self._stop.is_set():
                try:
                    if not conn.recv(4096):
                        break
                except TimeoutError:
                    continue
        except OSError:
            pass
        finally:
            conn.close()
            with self._lock:
                self._raw.discard(conn)

    def current_host_key(self) -> paramiko.PKey:
        """The key a new connection is shown (the changed one while host_key_changed is set)."""
        return self.changed_host_key if "host_key_changed" in self.device.flags else self.host_key

    def _drop(self, channel: paramiko.Channel, partial: bytes) -> None:
        """Send part of an answer, then cut the TCP connection without an SSH goodbye."""
        with contextlib.suppress(*_GONE):
            channel.sendall(partial)
        transport = channel.get_transport()
        sock = getattr(transport, "sock", None)
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if transport is not None:
            transport.close()
        logger.info("%s: connection dropped mid-command (disconnect)", self.device.id)
        raise _Dropped("disconnect")

    def _session(self, transport: paramiko.Transport) -> None:
        transport.add_server_key(self.current_host_key())
        session = _Session(self.device)
        transport.start_server(server=session)
        while not self._stop.is_set() and transport.is_active():
            channel = transport.accept(timeout=ACCEPT_POLL_S)
            if channel is None:
                continue
            thread = threading.Thread(
                target=self._channel,
                args=(session, channel),
                name=f"sim-ssh-{self.device.id}-ch{channel.get_id()}",
                daemon=True,
            )
            thread.start()

    def _channel(self, session: _Session, channel: paramiko.Channel) -> None:
        request = session.request(channel)
        try:
            if not request.ready.wait(SESSION_SETUP_TIMEOUT_S):
                return
            if request.exec_command is not None:
                self._exec(channel, request.exec_command)
            else:
                self._shell(channel, echo=request.pty)
        except (*_GONE, _Dropped) as exc:
            logger.debug("%s: channel ended: %s", self.device.id, exc)
        finally:
            with contextlib.suppress(*_GONE):  # the client may have left already
                channel.close()

    def _exec(self, channel: paramiko.Channel, command: str) -> None:
        behaviour = self.device.behaviour
        if behaviour == "hang":
            self._wait_closed(channel)
            return
        if behaviour == "garbage":
            channel.sendall(line_noise())
            channel.send_exit_status(0)
            return
        output, known = self.device.run(command)
        data = output.encode("utf-8")
        if self.device.behaviour == "disconnect":
            self._drop(channel, data[: len(data) // 2])
        channel.sendall(data)
        channel.send_exit_status(0 if known else 1)

    def _wait_closed(self, channel: paramiko.Channel) -> None:
        channel.settimeout(ACCEPT_POLL_S)
        while not self._stop.is_set() and not channel.closed:
            try:
                if not channel.recv(4096):
                    return
            except TimeoutError:
                continue

    def _shell(self, channel: paramiko.Channel, *, echo: bool) -> None:
        device = self.device
        if device.behaviour == "garbage":
            channel.sendall(line_noise())
        elif device.behaviour != "hang":
            channel.sendall(f"\r\n{device.banner}\r\n\r\n".encode())
            channel.sendall(device.prompt.encode())
        channel.settimeout(ACCEPT_POLL_S)
        buffer = bytearray()
        after_cr = False
        while not self._stop.is_set():
            try:
                data = channel.recv(4096)
            except TimeoutError:
                continue
            if not data:
                return
            for byte in data:
                if byte == 0x0A and after_cr:  # the LF of a CRLF
                    after_cr = False
                    continue
                after_cr = byte == 0x0D
                if byte in (0x0D, 0x0A):
                    line = buffer.decode("utf-8", errors="replace")
                    buffer.clear()
                    if not self._line(channel, line, echo=echo):
                        return
                elif byte in (0x08, 0x7F):
                    del buffer[-1:]
                elif len(buffer) < 4096:
                    buffer.append(byte)

    def _line(self, channel: paramiko.Channel, line: str, *, echo: bool) -> bool:
        """Answer one command line; False when the session should end."""
        behaviour = self.device.behaviour
        if behaviour == "hang":
            return True  # read, never answer
        if behaviour == "garbage":
            channel.sendall(line_noise())
            return True
        if echo:
            channel.sendall(line.encode("utf-8") + b"\r\n")
        if " ".join(line.split()) in EXIT_COMMANDS:
            channel.send_exit_status(0)
            return False
        output, _ = self.device.run(line)
        data = output.encode("utf-8")
        if behaviour == "disconnect" and line.strip():
            self._drop(channel, data[: len(data) // 2])
        channel.sendall(data + self.device.prompt.encode())
        return True
