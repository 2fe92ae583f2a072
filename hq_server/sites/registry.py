"""Sites: the rule for their names, their timezone, creating and finding them, their agents.

The same rules for the CLI (`hq site add`) and the API (POST /api/v1/sites).
"""

from __future__ import annotations

import logging
import unicodedata
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from hq_server.core.errors import ConfigError, InvalidInput, NotFound
from hq_server.customers.records import find_customer, set_site_customer
from hq_server.store.models import Agent, Site

logger = logging.getLogger(__name__)

SITE_NAME_MAX = 100  # the column's length, counted in characters as PostgreSQL does
# Unicode categories refused in site names: controls (NUL, newline...), format characters
# (e.g. bidirectional overrides that make a name display as another), surrogates, private
# use, unassigned; and line/paragraph separators.
_REFUSED_CATEGORIES = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def check_site_name(name: str) -> str:
    """The site name as stored (NFC, outer spaces stripped), or InvalidInput saying what is
    wrong: empty, longer than 100 characters, or holding control or format characters. The one
    rule for the CLI and the API, the same on SQLite and PostgreSQL; letters of any script
    (e.g. Chinese), digits, spaces, punctuation and symbols are fine."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    if not cleaned:
        raise InvalidInput("site name: must not be empty", field="name")
    if len(cleaned) > SITE_NAME_MAX:
        raise InvalidInput(
            f"site name: at most {SITE_NAME_MAX} characters, not {len(cleaned)}", field="name"
        )
    for char in cleaned:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise InvalidInput(
                f"site name: control or invisible character U+{ord(char):04X} is not allowed",
                field="name",
            )
    return cleaned


def check_timezone(name: str) -> str:
    """Return `name` if it is a known IANA timezone, else raise ConfigError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"unknown timezone {name!r}: use an IANA name like Asia/Shanghai"
        ) from None
    return name


def ensure_site(
    session: Session,
    name: str,
    now: datetime,
    *,
    customer: str = "",
    contact: str = "",
    timezone: str = "UTC",
) -> tuple[Site, bool]:
    """The site called `name`, created with these details if missing; True if it was created.
    InvalidInput for a name check_site_name refuses."""
    name = check_site_name(name)
    site = session.scalars(select(Site).where(Site.name == name)).one_or_none()
    if site is not None:
        return site, False
    site = Site(
        name=name,
        customer=customer,
        contact=contact,
        timezone=check_timezone(timezone),
        created_at=now,
    )
    # A customer with a record of that name: the site is under its contract.
    record = find_customer(session, customer) if customer else None
    if record is not None:
        set_site_customer(session, site, record)
    session.add(site)
    session.flush()
    logger.info("created site %s (id %s)", name, site.id)
    return site, True


def find_site(session: Session, name: str) -> Site:
    """The site called `name`; NotFound otherwise."""
    cleaned = unicodedata.normalize("NFC", name).strip()  # as check_site_name stores it
    site = session.scalars(select(Site).where(Site.name == cleaned)).one_or_none()
    if site is None:
        raise NotFound(f"no site {cleaned!r}")
    return site


def active_agents(session: Session, site_id: int) -> list[Agent]:
    """The site's agents whose tokens work, by id."""
    return list(
        session.scalars(
            select(Agent)
            .where(Agent.site_id == site_id, Agent.revoked_at.is_(None))
            .order_by(Agent.id)
        )
    )
