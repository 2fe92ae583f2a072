"""SSH CLI collector (paramiko): interactive shell with a prompt, or plain exec.

paramiko blocks, so each poll runs in a worker thread (asyncio.to_thread) with a timeout on every
step: TCP connect, banner and key exchange, authentication, opening the channel and each read.
A session lasts one poll; nothing stays connected between polls.

Host keys are pinned in the agent-owned known_hosts file (OpenSSH format, `[host]:port` for ports
other than 22). First contact records the key, unless the target is strict, in which case an
unknown key is refused. A key that differs from the pinned one raises HostKeyMismatch before any
credentials are sent. Passwords and config text never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paramiko
from paramiko.pkey import UnknownKeyType

from collectors import values
from collectors.base import Reading
from collectors.errors import AuthFailed, DeviceUnreachable, DeviceUnreadable, HostKeyMismatch
from collectors.profiles import SshCommand, SshSource
from collectors.targets import SshTarget

logger = logging.getLogger(__name__)

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b[()][A-Z0-9]")
_RECV_CHUNK = 65536
CLOSE_WAIT_S = 1.0  # how long a closing session waits for the server to close its end
_known_hosts_locks: dict[Path, threading.Lock] = {}
_known_hosts_locks_guard = threading.Lock()


def host_key_name(host: str, port: int) -> str:
    """The known_hosts name of a server: `host` on port 22, `[host]:port` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def _lock_for(path: Path) -> threading.Lock:
    with _known_hosts_locks_guard:
        return _known_hosts_locks.setdefault(path.resolve(), threading.Lock())


def _describe(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


def check_host_key(
    known_hosts: Path, name: str, key: paramiko.PKey, *, strict: bool, device_id: str
) -> None:
    """Accept a pinned key, record an unknown one (unless strict); raise HostKeyMismatch else."""
    with _lock_for(known_hosts):
        keys = paramiko.HostKeys()
        if known_hosts.exists():
            try:
                keys.load(str(known_hosts))
            except (OSError, UnicodeDecodeError, paramiko.SSHException) as exc:
                raise HostKeyMismatch(f"cannot read known_hosts {known_hosts}: {exc}") from None
        pinned = keys.lookup(name)
        if pinned:
            same_type = pinned.get(key.get_name())
            if same_type is not None and same_type == key:
                return
            known = same_type if same_type is not None else next(iter(pinned.values()))
            raise HostKeyMismatch(
                f"SSH host key of {name} changed: pinned {_describe(known)}, offered "
                f"{_describe(key)}; not logging in. If the device was replaced on purpose, "
                f"remove its line from {known_hosts}"
            )
        if strict:
            raise HostKeyMismatch(
                f"SSH host key of {name} ({_describe(key)}) is not in {known_hosts} and the "
                "target is strict_host_key: add the key to known_hosts first"
            )
        keys.add(name, key.get_name(), key)
        known_hosts.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".known_hosts.", dir=known_hosts.parent)
        os.close(fd)
        try:
            keys.save(tmp)
            os.chmod(tmp, 0o600)
            os.replace(tmp, known_hosts)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        logger.info("%s: pinned new SSH host key of %s (%s)", device_id, name, _describe(key))


def _clean(data: bytes) -> str:
    """Bytes from a CLI as text: UTF-8 (bad bytes replaced), no ANSI escapes, \\n line ends."""
    text = data.decode("utf-8", errors="replace")
    return _ANSI.sub("", text).replace("\r\n", "\n").replace("\r", "")


class _Session:
    """One blocking SSH session (used from a single worker thread)."""

    def __init__(self, device_id: str, target: SshTarget, known_hosts: Path) -> None:
        self.device_id = device_id
        self.target = target
        self.known_hosts = known_hosts
        self.transport: paramiko.Transport | None = None

    # -- connection -------------------------------------------------------------------------

    def open(self) -> paramiko.Transport:
        """Connect, check the host key, authenticate; raise collectors.errors on failure."""
        t = self.target
        try:
            sock = socket.create_connection((t.host, t.port), timeout=t.timeout_s)
        except TimeoutError:
            raise DeviceUnreachable(f"SSH connect timeout after {t.timeout_s:g}s") from None
        except ConnectionRefusedError:
            raise DeviceUnreachable(f"SSH connection to port {t.port} refused") from None
        except OSError as exc:
            raise DeviceUnreachable(f"SSH connect failed: {exc.strerror or exc}") from None
        try:
            transport = paramiko.Transport(sock)
        except Exception:
            sock.close()
            raise
        self.transport = transport
        transport.banner_timeout = t.timeout_s
        transport.handshake_timeout = t.timeout_s
        transport.auth_timeout = t.timeout_s
        transport.channel_timeout = t.timeout_s
        name = host_key_name(t.host, t.port)
        self._prefer_pinned_key_type(transport, name)
        with self._mapped("handshake"):
            transport.start_client(timeout=t.timeout_s)
            server_key = transport.get_remote_server_key()
        check_host_key(
            self.known_hosts, name, server_key, strict=t.strict_host_key, device_id=self.device_id
        )
        with self._mapped("authentication"):
            self._authenticate(transport)
        return transport

    def _prefer_pinned_key_type(self, transport: paramiko.Transport, name: str) -> None:
        """Ask for the pinned key's type first, so a server with several keys is not flagged."""
        if not self.known_hosts.exists():
            return
        try:
            pinned = paramiko.HostKeys(str(self.known_hosts)).lookup(name)
        except (OSError, UnicodeDecodeError, paramiko.SSHException):
            return  # check_host_key reports an unreadable file
        if not pinned:
            return
        opts = transport.get_security_options()
        keytype = next(iter(pinned))
        if keytype == "ssh-rsa":
            keytype = next(
                (k for k in ("rsa-sha2-512", "rsa-sha2-256") if k in opts.key_types), keytype
            )
        if keytype in opts.key_types:
            opts.key_types = [keytype] + [k for k in opts.key_types if k != keytype]

    def _authenticate(self, transport: paramiko.Transport) -> None:
        t = self.target
        user = t.username
        if t.key_file is not None:
            try:
                pkey = paramiko.PKey.from_path(t.key_file)
            except (OSError, ValueError, paramiko.SSHException, UnknownKeyType) as exc:
                raise AuthFailed(
                    f"cannot load SSH key file {t.key_file}: {type(exc).__name__}"
                ) from None
            try:
                transport.auth_publickey(user, pkey)
            except paramiko.AuthenticationException:
                if t.password is None:
                    raise AuthFailed(f"SSH key refused for user {user!r}") from None
        if not transport.is_authenticated() and t.password is not None:
            try:
                transport.auth_password(user, t.password.get_secret_value())
            except paramiko.AuthenticationException:
                raise AuthFailed(f"SSH password refused for user {user!r}") from None
        if not transport.is_authenticated():
            raise AuthFailed(f"SSH authentication incomplete for user {user!r}")

    @contextmanager
    def _mapped(self, step: str) -> Iterator[None]:
        """Map paramiko and socket errors of one step into collectors.errors."""
        try:
            yield
        except (AuthFailed, DeviceUnreachable, DeviceUnreadable, HostKeyMismatch):
            raise
        except paramiko.AuthenticationException:
            raise AuthFailed(f"SSH {step} refused for user {self.target.username!r}") from None
        except TimeoutError:
            raise DeviceUnreachable(
                f"SSH {step} timeout after {self.target.timeout_s:g}s"
            ) from None
        except paramiko.SSHException as exc:
            msg = str(exc)
            banner_error = "Error reading SSH protocol banner"
            # paramiko appends the cause: nothing for a timeout or EOF, text for bad bytes.
            if msg.startswith(
                ("Indecipherable protocol version", "Invalid SSH banner", "Incompatible")
            ) or (msg.startswith(banner_error) and msg != banner_error):
                raise DeviceUnreadable(f"SSH {step}: not an SSH server we can talk to") from None
            # "No existing session": start_client gave up waiting before paramiko's own timeout.
            if "timeout" in msg.lower() or msg.startswith((banner_error, "No existing session")):
                raise DeviceUnreachable(
                    f"SSH {step}: no answer within {self.target.timeout_s:g}s"
                ) from None
            raise DeviceUnreachable(f"SSH {step} failed: {type(exc).__name__}") from None
        except (EOFError, ConnectionError):
            raise DeviceUnreachable(f"SSH {step}: connection closed by the device") from None
        except OSError as exc:
            raise DeviceUnreachable(
                f"SSH {step} failed: {exc.strerror or type(exc).__name__}"
            ) from None

    def close(self) -> None:
        """End the session cleanly: half-close, let the server close its end, then close.

        paramiko's close() shuts the socket at once. Whatever the server sends after that
        (its answer to our channel close) meets a closed socket, the kernel answers with a
        reset, and the server logs "Connection reset by peer" at ERROR on every poll. Sending
        only our FIN first lets the server read EOF and close its end, while our transport
        thread reads what is still on its way, so both sides close without a reset.
        """
        transport, self.transport = self.transport, None
        if transport is None:
            return
        if transport.is_active() and transport.is_authenticated():
            try:
                transport.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            else:
                # Its thread ends at the server's EOF; a server that never closes is not
                # waited for long.
                transport.join(min(CLOSE_WAIT_S, self.target.timeout_s))
        transport.close()

    # -- shell mode ---------------------------------------------------------------------------

    def run_shell(self, source: SshSource, commands: list[str]) -> list[str]:
        """Run commands in an interactive shell; each output without echo and prompt."""
        assert self.transport is not None
        prompt = re.compile(source.prompt)
        with self._mapped("shell"):
            chan = self.transport.open_session(timeout=self.target.timeout_s)
            chan.get_pty(term="vt100", width=250, height=1000)
            chan.invoke_shell()
            self._read_to_prompt(chan, prompt, "login banner")
            if source.pager_off:
                self._send(chan, source.pager_off)
                self._read_to_prompt(chan, prompt, "pager off")
            outputs: list[str] = []
            for command in commands:
                self._send(chan, command)
                text = self._read_to_prompt(chan, prompt, command)
                outputs.append(self._strip_echo_and_prompt(text, command))
            chan.close()
        return outputs

    def _send(self, chan: paramiko.Channel, line: str) -> None:
        chan.settimeout(self.target.timeout_s)
        chan.sendall((line + "\n").encode())

    def _read_to_prompt(self, chan: paramiko.Channel, prompt: re.Pattern[str], what: str) -> str:
        """Read until the last line matches the prompt; bounded by timeout_s and the size cap."""
        limit = self.target.max_output_bytes
        deadline = time.monotonic() + self.target.timeout_s
        buf = bytearray()
        while True:
            text = _clean(bytes(buf))
            if buf and prompt.search(text.rsplit("\n", 1)[-1]):
                return text
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            chan.settimeout(remaining)
            try:
                chunk = chan.recv(_RECV_CHUNK)
            except TimeoutError:
                break
            if not chunk:
                raise DeviceUnreachable(f"SSH shell closed by the device while waiting ({what})")
            buf += chunk
            if len(buf) > limit:
                raise DeviceUnreadable(f"SSH output of {what!r} exceeds {limit} bytes")
        if not buf:
            raise DeviceUnreachable(
                f"SSH shell sent nothing within {self.target.timeout_s:g}s ({what})"
            )
        raise DeviceUnreadable(
            f"SSH shell never showed the prompt within {self.target.timeout_s:g}s ({what}, "
            f"{len(buf)} bytes)"
        )

    @staticmethod
    def _strip_echo_and_prompt(text: str, command: str) -> str:
        lines = text.split("\n")
        lines.pop()  # the prompt
        if lines and lines[0].strip().endswith(command.strip()):
            lines.pop(0)
        return "\n".join(lines)

    # -- exec mode ----------------------------------------------------------------------------

    def run_exec(self, commands: list[str]) -> list[str]:
        """Run each command on its own exec channel; its stdout up to EOF."""
        assert self.transport is not None
        outputs: list[str] = []
        with self._mapped("exec"):
            for command in commands:
                outputs.append(self._exec_one(command))
        return outputs

    def _exec_one(self, command: str) -> str:
        assert self.transport is not None
        limit = self.target.max_output_bytes
        chan = self.transport.open_session(timeout=self.target.timeout_s)
        try:
            chan.settimeout(self.target.timeout_s)
            chan.exec_command(command)
            deadline = time.monotonic() + self.target.timeout_s
            buf = bytearray()
            while True:
                remaining = deadline - time.monotonic()
                chunk = b""
                if remaining > 0:
                    chan.settimeout(remaining)
                    try:
                        chunk = chan.recv(_RECV_CHUNK)
                    except TimeoutError:
                        remaining = 0
                if remaining <= 0:
                    if not buf:
                        raise TimeoutError
                    raise DeviceUnreadable(
                        f"SSH command {command!r} did not finish within "
                        f"{self.target.timeout_s:g}s ({len(buf)} bytes)"
                    )
                if not chunk:
                    break
                buf += chunk
                if len(buf) > limit:
                    raise DeviceUnreadable(f"SSH output of {command!r} exceeds {limit} bytes")
            # The exit status follows EOF closely; a server that never sends one is tolerated.
            if chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                status = chan.recv_exit_status()
                if status != 0:
                    raise DeviceUnreadable(f"SSH command {command!r} exited with status {status}")
            return _clean(bytes(buf))
        finally:
            chan.close()


def parse_output(device_id: str, spec: SshCommand, output: str, ts: float) -> list[Reading]:
    """Readings from one command's output: a Reading per matching row plus the row count."""
    readings: list[Reading] = []
    if spec.rows is not None:
        rows = re.compile(spec.rows.pattern)
        count = 0
        for line in output.split("\n"):
            m = rows.search(line)
            if m is None:
                continue
            count += 1
            readings.append(
                Reading(
                    device=device_id,
                    metric=spec.rows.metric,
                    value=values.convert(spec.rows, m.group("value")),
                    component=m.group("component").strip(),
                    unit=spec.rows.unit,
                    kind="state" if spec.rows.is_state else "metric",
                    ts=ts,
                )
            )
        readings.append(
            Reading(
                device=device_id,
                metric=spec.rows.metric,
                value=count,
                component="",
                unit="rows",
                kind="metric",
                ts=ts,
            )
        )
    for vspec in spec.values:
        m = re.search(vspec.pattern, output, re.MULTILINE)
        if m is None:
            continue
        readings.append(
            Reading(
                device=device_id,
                metric=vspec.metric,
                value=values.convert(vspec, m.group(1)),
                unit=vspec.unit,
                kind="state" if vspec.is_state else "metric",
                ts=ts,
            )
        )
    return readings


class SshCollector:
    """Runs a profile's CLI commands over SSH and parses their output into Readings."""

    def __init__(
        self, device_id: str, target: SshTarget, source: SshSource, known_hosts: Path
    ) -> None:
        self.device_id = device_id
        self.target = target
        self.source = source
        self.known_hosts = known_hosts

    def _run(self, commands: list[str]) -> list[str]:
        """Blocking: one session, the commands' outputs in order."""
        session = _Session(self.device_id, self.target, self.known_hosts)
        try:
            session.open()
            if self.source.mode == "shell":
                return session.run_shell(self.source, commands)
            return session.run_exec(commands)
        finally:
            session.close()

    async def collect(self) -> list[Reading]:
        """Poll the device once: every profile command in one session."""
        started = time.perf_counter()
        commands = [c.command for c in self.source.commands]
        outputs = await asyncio.to_thread(self._run, commands)
        ts = time.time()
        readings: list[Reading] = []
        for spec, output in zip(self.source.commands, outputs, strict=True):
            readings.extend(parse_output(self.device_id, spec, output, ts))
        logger.debug(
            "%s: %d SSH readings in %.3fs",
            self.device_id,
            len(readings),
            time.perf_counter() - started,
        )
        return readings

    async def fetch_config(self) -> str:
        """The raw output of the profile's config_command.

        Not scrubbed: it may hold passwords and keys. Scrubbing before upload comes in a later
        issue; until then never log it or send it anywhere.
        """
        if not self.source.config_command:
            raise ValueError(f"{self.device_id}: the profile has no config_command")
        outputs = await asyncio.to_thread(self._run, [self.source.config_command])
        return outputs[0]

    async def run_commands(self, commands: list[str]) -> list[str]:
        """Run catalogue commands (profile actions) in one session; their outputs in order."""
        return await asyncio.to_thread(self._run, commands)

    async def close(self) -> None:
        """Nothing to release: a session lasts one poll."""
