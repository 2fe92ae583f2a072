"""Webhook signing keys sealed at rest with HQ's own key (Fernet: AES-128-CBC + HMAC-SHA256).

Escalation chains, and the copy of its chain each ticket keeps, hold the contacts' webhook keys.
Stored sealed, a dump or backup of the database does not hand them out: opening them needs
HQ's key file, which only HQ reads (`secret_key_file`, default `<data_dir>/secret.key`, mode
0600). Every HQ replica of one database needs the same file.

HQ's first start (`establish`) writes the key file if there is none and records its fingerprint
in the database (hq_facts), then seals the keys stored plain by versions that did not seal.
Every later start checks its key file against that fingerprint: with another key, or none, HQ
refuses to start rather than seal with a key the other replicas do not have. `unseal_stored`
(`hq db unseal`) puts the keys back in plain text, for going back to a version that does not
seal, and forgets the fingerprint.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import hmac
import os
import stat
import tempfile
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Text, cast, select, text
from sqlalchemy.orm import Session, load_only

from hq_server.core.errors import ConfigError
from hq_server.core.settings import Settings
from hq_server.store.models import EngineerContact, EscalationChain, HqFact, Ticket

SEALED = "sealed:v1:"
KEY_FILE_NAME = "secret.key"
KEY_FACT = "secret_key"  # hq_facts row: the fingerprint of the key webhook keys are sealed with
_FIELD = "webhook_secret"
_FINGERPRINT_INPUT = b"stationwatch: which key seals the webhook keys"
# pg_advisory_xact_lock key: one HQ at a time records (or checks) the key at start.
_ESTABLISH_LOCK = 0x53574B59


def is_sealed(stored: str) -> bool:
    """Whether a stored value is sealed (else a version that did not seal stored it plain)."""
    return stored.startswith(SEALED)


class SecretUnavailable(Exception):
    """A sealed value that HQ's key does not open (another key file, or damaged)."""


class SecretBox:
    """Seals and opens values with one key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        # Names the key without giving it away (an HMAC of a constant under it).
        self.fingerprint = hmac.new(key, _FINGERPRINT_INPUT, hashlib.sha256).hexdigest()

    def seal(self, plain: str) -> str:
        """The sealed form of `plain`, whatever it looks like (a key given through the API that
        happens to start like a sealed value is sealed too)."""
        return SEALED + self._fernet.encrypt(plain.encode()).decode("ascii")

    def seal_if_plain(self, stored: str) -> str:
        """A stored value sealed, unless it already is."""
        return stored if is_sealed(stored) else self.seal(stored)

    def open(self, stored: str) -> str:
        """The plain value of a stored one (one stored before sealing is returned as is)."""
        if not is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored.removeprefix(SEALED).encode("ascii")).decode()
        except (InvalidToken, ValueError) as exc:
            raise SecretUnavailable("HQ's key does not open this value") from exc

    def seal_levels(self, chain: dict[str, Any]) -> dict[str, Any]:
        """A copy of a chain (or its stored levels) with every contact's webhook key sealed."""
        return _with_keys(chain, self.seal)

    def seal_plain_levels(self, chain: dict[str, Any]) -> dict[str, Any]:
        """A copy of a stored chain with the webhook keys still in plain text sealed."""
        return _with_keys(chain, self.seal_if_plain)

    def adopt_levels(self, chain: dict[str, Any]) -> dict[str, Any]:
        """A copy of a stored chain with the plain keys sealed; SecretUnavailable if a sealed
        one does not open with this key."""
        return _with_keys(chain, self._adopt)

    def _adopt(self, stored: str) -> str:
        if is_sealed(stored):
            self.open(stored)
            return stored
        return self.seal(stored)

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


def has_keys(chain: dict[str, Any]) -> bool:
    """Whether a chain (or its levels) has a contact with a webhook key."""
    return any(
        isinstance(contact, dict) and contact.get(_FIELD)
        for level in chain.get("levels", [])
        for contact in level.get("contacts", [])
    )


def box_for(settings: Settings) -> SecretBox:
    """The SecretBox of HQ's key file. Read each time (chains are saved and webhooks sent now
    and then): a replaced file counts at once. Never creates one: only `establish` does."""
    path = key_file(settings)
    if not path.exists():
        raise ConfigError(f"{path}: HQ's key file is missing (HQ writes it at its first start)")
    return SecretBox(_read_key(path))


def establish(session: Session, settings: Settings, now: datetime) -> int:
    """At HQ's start: check the key file against the fingerprint the database keeps, and seal
    the chains' keys an older HQ may have saved plain meanwhile. The first time (no fingerprint
    yet): write the key file if there is none, check that the keys already sealed open with it,
    seal those stored plain and record its fingerprint. Returns how many rows were sealed;
    ConfigError naming the file if it is missing or not the database's key."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ESTABLISH_LOCK})
    path = key_file(settings)
    fact = session.get(HqFact, KEY_FACT)
    if fact is None:
        if not path.exists() and _any_sealed(session):
            raise ConfigError(
                f"{path}: HQ's key file is missing, and this database holds webhook keys "
                "sealed with a key it does not name: copy here the key file of the HQ that "
                "sealed them (or set secret_key_file)"
            )
        box = SecretBox(_read_key(path) if path.exists() else _create_key(path))
        try:
            sealed = _rewrite_stored(session, box.adopt_levels)
        except SecretUnavailable as exc:
            raise ConfigError(
                f"{path}: {exc} holds a webhook key sealed with another key: use the key file "
                "of the HQ that sealed it"
            ) from None
        session.add(HqFact(name=KEY_FACT, value=box.fingerprint, updated_at=now))
        return sealed
    if not path.exists():
        raise ConfigError(
            f"{path}: HQ's key file is missing, and this database's webhook keys are sealed "
            f"with key {fact.value[:12]}: copy that key file here from another HQ of this "
            "database or from its backup (or set secret_key_file)"
        )
    box = SecretBox(_read_key(path))
    _check(path, box, fact)
    return _rewrite_stored(session, box.seal_plain_levels, tickets=False)


def _any_sealed(session: Session) -> bool:
    like = f"%{SEALED}%"
    chains = select(EscalationChain.id).where(cast(EscalationChain.levels, Text).like(like))
    tickets = select(Ticket.id).where(cast(Ticket.escalation, Text).like(like))
    # Engineers' contact channels are always sealed (hq_server.oncall.contacts).
    contacts = select(EngineerContact.user_id)
    return any(session.execute(query.limit(1)).first() for query in (chains, tickets, contacts))


def _check(path: Path, box: SecretBox, fact: HqFact) -> None:
    if box.fingerprint != fact.value:
        raise ConfigError(
            f"{path}: not the key this database's webhook keys are sealed with (this file is "
            f"key {box.fingerprint[:12]}, the database's is {fact.value[:12]}): use that key "
            "file, from another HQ of this database or from its backup"
        )


def _create_key(path: Path) -> bytes:
    """Write a new key file and return the key in it. Written whole under a unique name, then
    linked into place: a crash leaves no half key, and of two writers at once the second gets
    the first one's key (read back from the file, never its own)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create HQ's key file: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as out:  # mkstemp: mode 0600, O_EXCL
            out.write(Fernet.generate_key() + b"\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):  # another writer was first: its key wins
            os.link(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot create HQ's key file: {exc.strerror}") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return _read_key(path)


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
    return _rewrite_stored(session, box.seal_plain_levels)


def unseal_stored(session: Session, settings: Settings) -> int:
    """Put the sealed webhook keys back in plain text (before going back to a version that
    does not seal) and forget the key's fingerprint; returns how many rows changed. A key that
    does not open raises SecretUnavailable naming its row, and the caller's transaction
    changes nothing. Run it with every HQ of the database stopped: a running one seals the
    chains it saves."""
    fact = session.get(HqFact, KEY_FACT, with_for_update=True)
    if fact is None and not key_file(settings).exists() and not _any_sealed(session):
        return 0  # nothing was ever sealed here
    box = box_for(settings)
    if fact is not None:
        _check(key_file(settings), box, fact)
    changed = _rewrite_stored(session, box.open_levels)
    if fact is not None:
        session.delete(fact)
    return changed


def _rewrite_stored(
    session: Session, change: Callable[[dict[str, Any]], dict[str, Any]], tickets: bool = True
) -> int:
    # Rows locked (PostgreSQL): a chain saved meanwhile is not overwritten with what was read.
    chains = session.scalars(select(EscalationChain).with_for_update())
    changed = _rewrite_rows(
        chains, "levels", change, lambda c: f"escalation chain {c.name!r} (id {c.id})"
    )
    if not tickets:
        return changed
    stmt = (
        select(Ticket)
        .options(load_only(Ticket.id, Ticket.number, Ticket.escalation))
        # Only tickets whose chain has a key (email-only contacts store "webhook_secret": null).
        .where(cast(Ticket.escalation, Text).like(f'%"{_FIELD}": "%'))
        .with_for_update()
        .execution_options(yield_per=500)
    )
    rows = session.scalars(stmt)
    return changed + _rewrite_rows(rows, "escalation", change, lambda t: f"ticket {t.number}")


def _rewrite_rows(
    rows: Iterable[Any],
    column: str,
    change: Callable[[dict[str, Any]], dict[str, Any]],
    name: Callable[[Any], str],
) -> int:
    """Apply `change` to a chain-holding column of each row; SecretUnavailable names the row."""
    changed = 0
    for row in rows:
        value = getattr(row, column)
        if not value:
            continue
        try:
            new = change(value)
        except SecretUnavailable:
            raise SecretUnavailable(name(row)) from None
        if new != value:
            setattr(row, column, new)
            changed += 1
    return changed
