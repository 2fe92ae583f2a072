"""Webhook signing keys sealed at rest with HQ's own key (Fernet: AES-128-CBC + HMAC-SHA256).

Escalation chains, and the copy of its chain each ticket keeps, hold the contacts' webhook keys.
Stored sealed, a dump or backup of the database does not hand them out: opening them needs
HQ's key file, which only HQ reads (`secret_key_file`, default `<data_dir>/secret.key`, mode
0600, created on first use). Every HQ replica of one database needs the same file.

Keys stored before sealing existed are read as they are until `seal_stored` (run by
`hq db upgrade` and at `hq serve` start) seals them. `unseal_stored` (`hq db unseal`) puts them
back in plain text, for going back to a version that does not seal.
"""

from __future__ import annotations

import copy
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from hq_server.errors import ConfigError
from hq_server.models import Ticket
from hq_server.models_ops import EscalationChain
from hq_server.settings import Settings

SEALED = "sealed:v1:"
KEY_FILE_NAME = "secret.key"
_FIELD = "webhook_secret"


class SecretUnavailable(Exception):
    """A sealed value that HQ's key does not open (another key file, or damaged)."""


class SecretBox:
    """Seals and opens values with one key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, plain: str) -> str:
        """The sealed form of `plain` (an already sealed value is returned as it is)."""
        if plain.startswith(SEALED):
            return plain
        return SEALED + self._fernet.encrypt(plain.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        """The plain value of a stored one (one stored before sealing is returned as is)."""
        if not stored.startswith(SEALED):
            return stored
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED).encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretUnavailable("HQ's key does not open this value") from exc

    def seal_levels(self, chain: dict[str, Any]) -> dict[str, Any]:
        """A copy of a chain (or its stored levels) with every contact's webhook key sealed."""
        return _with_keys(chain, self.seal)

    def open_levels(self, chain: dict[str, Any]) -> dict[str, Any]:
        """A copy of a chain (or its stored levels) with every contact's webhook key opened;
        SecretUnavailable if one does not open."""
        return _with_keys(chain, self.open)


def _with_keys(chain: dict[str, Any], change: Callable[[str], str]) -> dict[str, Any]:
    changed = copy.deepcopy(chain)
    for level in changed.get("levels", []):
        for contact in level.get("contacts", []):
            if isinstance(contact, dict) and isinstance(contact.get(_FIELD), str):
                contact[_FIELD] = change(contact[_FIELD])
    return changed


def key_file(settings: Settings) -> Path:
    """Where HQ's key is kept."""
    return settings.secret_key_file or settings.data_dir / KEY_FILE_NAME


def box_for(settings: Settings) -> SecretBox:
    """The SecretBox of HQ's key file, created (mode 0600) if it does not exist yet. Read each
    time (chains are saved and webhooks sent now and then): a replaced file counts at once."""
    path = key_file(settings)
    if path.exists():
        return SecretBox(_read_key(path))
    key = Fernet.generate_key()
    # Written whole under another name, then linked into place: a crash leaves no half key,
    # and of two processes starting at once the second reads the first one's key.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key + b"\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return SecretBox(_read_key(path))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create HQ's key file: {exc.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return SecretBox(key)


def _read_key(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        key = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read HQ's key file: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: HQ's key file must be readable by its owner only (chmod 600), "
            f"it is {stat.filemode(mode)}"
        )
    try:
        Fernet(key)
    except ValueError:
        raise ConfigError(
            f"{path}: not a key (expected 32 url-safe base64-encoded bytes, as HQ writes)"
        ) from None
    return key


def seal_stored(session: Session, box: SecretBox) -> int:
    """Seal the webhook keys still stored plain, in chains and in tickets' copies of them;
    returns how many rows changed."""
    return _rewrite_stored(session, box.seal_levels)


def unseal_stored(session: Session, box: SecretBox) -> int:
    """Put the sealed webhook keys back in plain text (before going back to a version that
    does not seal); returns how many rows changed. A key that does not open raises
    SecretUnavailable naming its row, and the caller's transaction changes nothing."""
    return _rewrite_stored(session, box.open_levels)


def _rewrite_stored(session: Session, change: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    changed = 0
    for chain in session.scalars(select(EscalationChain)):
        try:
            levels = change(chain.levels)
        except SecretUnavailable:
            raise SecretUnavailable(f"escalation chain {chain.name!r} (id {chain.id})") from None
        if levels != chain.levels:
            chain.levels = levels
            changed += 1
    stmt = select(Ticket).where(cast(Ticket.escalation, Text).like(f'%"{_FIELD}"%'))
    for ticket in session.scalars(stmt):
        if not ticket.escalation:
            continue
        try:
            escalation = change(ticket.escalation)
        except SecretUnavailable:
            raise SecretUnavailable(f"ticket {ticket.number}") from None
        if escalation != ticket.escalation:
            ticket.escalation = escalation
            changed += 1
    return changed
