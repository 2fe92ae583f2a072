"""Where and how to reach a device: connection settings per protocol, secrets included.

Secrets (community, passwords, keys) come from the agent's credentials file, merged in by
agent.config; they are SecretStr so they never show in reprs, logs or errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class _Target(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SnmpTarget(_Target):
    """An SNMP agent: v1/v2c with a community, or v3 USM."""

    host: str
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["1", "2c", "3"] = "2c"
    community: SecretStr | None = None
    username: str | None = None
    auth_protocol: Literal["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"] | None = None
    auth_key: SecretStr | None = None
    priv_protocol: Literal["DES", "AES", "AES192", "AES256"] | None = None
    priv_key: SecretStr | None = None
    timeout_s: float = Field(default=2.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10)
    max_repetitions: int = Field(default=25, ge=1, le=200)

    @model_validator(mode="after")
    def _credentials(self) -> SnmpTarget:
        if self.version in ("1", "2c") and self.community is None:
            raise ValueError(f"SNMP v{self.version} needs a community (in the credentials file)")
        if self.version == "3" and not self.username:
            raise ValueError("SNMP v3 needs a username (in the credentials file)")
        if self.priv_protocol and not self.auth_protocol:
            raise ValueError("SNMP v3 privacy (priv_protocol) needs authentication too")
        return self


class SshTarget(_Target):
    """An SSH server: password or key authentication; host key pinned in known_hosts."""

    host: str
    port: int = Field(default=22, ge=1, le=65535)
    username: str
    password: SecretStr | None = None
    key_file: Path | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    strict_host_key: bool = False
    max_output_bytes: int = Field(default=1_000_000, ge=1024)

    @model_validator(mode="after")
    def _auth(self) -> SshTarget:
        if self.password is None and self.key_file is None:
            raise ValueError("SSH needs a password or a key_file (in the credentials file)")
        return self


class SerialTarget(_Target):
    """A serial port (USB adapter, console server pty)."""

    port: str
    baudrate: int = 9600
    bytesize: Literal[5, 6, 7, 8] = 8
    parity: Literal["N", "E", "O", "M", "S"] = "N"
    stopbits: Literal[1, 2] = 1
    timeout_s: float = Field(default=2.0, gt=0, le=60)


class HostTarget(_Target):
    """The agent's own host: which extra paths get a disk reading (the state dir always does)."""

    extra_paths: list[Path] = Field(default_factory=list)
