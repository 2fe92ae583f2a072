"""Tables of who may call HQ: users, API tokens, the audit log, and HQ's facts about itself."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from hq_server.core.domain import Role
from hq_server.store.models.base import Base, BigId


class User(Base):
    """A person who logs in: a role and a scrypt password hash (see hq_server.core.passwords)."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(
            "role IN ({})".format(", ".join(f"'{r}'" for r in Role)), name="role_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(300))
    disabled: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    # Added by revision 0008: one user per name whatever its case.
    username_key: Mapped[str] = mapped_column(
        String(64),
        unique=True,
        comment="the user name in lower case: names are unique regardless of case",
    )
    # Added by revision 0009: the console's language the user chose (None: from the browser).
    language: Mapped[str | None] = mapped_column(
        String(16), comment="the console language the user chose (zh_CN, en); null: the browser's"
    )


class ApiToken(Base):
    """A bearer token for people and scripts: standalone with a role, or a user's."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        CheckConstraint(
            "role IN ({})".format(", ".join(f"'{r}'" for r in Role)), name="role_known"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    expires_at: Mapped[datetime]  # added by revision 0008


class WebSession(Base):
    """A console login (revision 0009): the cookie's sha256 hash, its user and CSRF token."""

    __tablename__ = "web_sessions"
    __table_args__ = (Index(None, "last_seen_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True, comment="sha256 of the cookie")
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime] = mapped_column(comment="the idle timeout counts from here")
    expires_at: Mapped[datetime] = mapped_column(comment="the end, however busy the session")
    client: Mapped[str] = mapped_column(String(100), comment="the address it logged in from")


class AuditEntry(Base):
    """One mutating API call: who, what, when, from where, with what result (append-only)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "at"), Index(None, "actor", "at"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(String(500))
    target_ids: Mapped[dict[str, Any]] = mapped_column(JSON)
    client: Mapped[str] = mapped_column(String(100))
    status: Mapped[int] = mapped_column(SmallInteger)


class HqFact(Base):
    """A fact HQ keeps about its own database, e.g. which key seals its webhook keys."""

    __tablename__ = "hq_facts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]
