"""Recognising an SNMP device's profile: match rules nominate candidates, key OIDs confirm them.

The agent daemon and `stationwatch agent poll` both identify a device without a configured
profile through `identify_target`, so they always agree on the profile. The work is bounded:
one GET of sysObjectID/sysDescr, then for each candidate (at most MAX_VENDOR_CANDIDATES vendor
profiles, then the standard-MIB fallbacks) one GET of its scalar key OIDs and, if none answered,
one GETNEXT of its key columns; an OID asked once is not asked again. It runs once, when the
device is identified, never on a poll.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from collectors.errors import DeviceUnreadable
from collectors.profiles import Profile, builtin_profiles, candidates
from collectors.snmp import SnmpClient, SnmpEngineHolder
from collectors.targets import SnmpTarget
from collectors.values import as_text

logger = logging.getLogger(__name__)
SYS_DESCR, SYS_OBJECT_ID = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"


@dataclass(frozen=True)
class Identification:
    """What identification found: the device's identity, the profile taken, those refused."""

    sys_object_id: str
    sys_descr: str
    profile: Profile | None
    refused: tuple[str, ...] = ()  # candidates tried whose key OIDs the device did not answer
    requests: int = 0  # SNMP requests it took

    def failure(self) -> str:
        """Why no profile was taken (for the unreadable fault and `agent poll`)."""
        who = f"sysObjectID {self.sys_object_id or '?'} / sysDescr {self.sys_descr[:80]!r}"
        if not self.refused:
            return f"no profile matches {who}"
        return (
            f"no profile answers for {who}: tried {', '.join(self.refused)}, "
            "none of their key OIDs answered"
        )


class _Prober:
    """Asks a device for key OIDs, each OID at most once."""

    def __init__(self, client: SnmpClient) -> None:
        self.client = client
        self.answered: dict[str, bool] = {}
        self.requests = 0

    async def confirms(self, profile: Profile) -> bool:
        """Whether the device answers at least one of the profile's key OIDs."""
        if not profile.key:
            return True  # an identity-only profile: its match rule is all there is to it
        scalars, columns = profile.key_oids()
        try:
            ask = [o for o in scalars if o not in self.answered]
            if ask:
                self.requests += 1
                got = await self.client.get(ask)
                self.answered |= {o: o in got for o in ask}
            if any(self.answered[o] for o in scalars):
                return True
            ask = [c for c in columns if c not in self.answered]
            if ask:
                self.requests += 1
                rows = await self.client.columns_with_rows(ask)
                self.answered |= {c: c in rows for c in ask}
        except DeviceUnreadable as exc:  # e.g. genErr for an unknown subtree: not this model
            logger.debug("%s: probing %s: %s", self.client.device_id, profile.name, exc)
            return False
        return any(self.answered.get(c, False) for c in columns)


async def identify_snmp(client: SnmpClient, profiles: Mapping[str, Profile]) -> Identification:
    """Pick the first candidate profile the device confirms; CollectorError if it is unreachable."""
    got = await client.get([SYS_OBJECT_ID, SYS_DESCR])
    oid, descr = as_text(got.get(SYS_OBJECT_ID, "")), as_text(got.get(SYS_DESCR, ""))
    prober = _Prober(client)
    refused: list[str] = []
    for profile in candidates(oid, descr, profiles):
        if await prober.confirms(profile):
            return Identification(oid, descr, profile, tuple(refused), prober.requests + 1)
        refused.append(profile.name)
    return Identification(oid, descr, None, tuple(refused), prober.requests + 1)


async def identify_target(
    device_id: str,
    target: SnmpTarget,
    engine: SnmpEngineHolder,
    profiles: Mapping[str, Profile] | None = None,
) -> Identification:
    """Identify the SNMP device at `target` among `profiles` (default: the shipped ones)."""
    client = SnmpClient(target, engine, device_id=device_id)
    return await identify_snmp(client, builtin_profiles() if profiles is None else profiles)
