"""HQ's stored vocabulary: ticket statuses, API roles, actors; shared by models, policy and API."""

from __future__ import annotations

from enum import StrEnum


class TicketStatus(StrEnum):
    """Life cycle of a ticket; engineers move it past `new` (hq_server.tickets.actions)."""

    NEW = "new"
    ACKNOWLEDGED = "acknowledged"
    IN_PROGRESS = "in_progress"
    PENDING_CUSTOMER = "pending_customer"
    RESOLVED = "resolved"
    CLOSED = "closed"


# A ticket in one of these is finished; anything else is "open" (one open ticket per fingerprint).
DONE_STATUSES: tuple[TicketStatus, ...] = (TicketStatus.RESOLVED, TicketStatus.CLOSED)
OPEN_STATUSES: tuple[TicketStatus, ...] = tuple(s for s in TicketStatus if s not in DONE_STATUSES)


class Role(StrEnum):
    """What a user API token may do: viewer reads, engineer works tickets, admin manages HQ."""

    VIEWER = "viewer"
    ENGINEER = "engineer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        """Higher ranks include the rights of lower ones."""
        return _ROLE_RANK[self]

    def allows(self, required: Role) -> bool:
        """True if this role has at least the rights of `required`."""
        return self.rank >= required.rank


_ROLE_RANK = {Role.VIEWER: 0, Role.ENGINEER: 1, Role.ADMIN: 2}


class TicketAction(StrEnum):
    """What a ticket history entry records."""

    OPENED = "opened"
    GRADE_CHANGED = "grade_changed"
    ALARM_CLEARED = "alarm_cleared"
    ALARM_RAISED_AGAIN = "alarm_raised_again"
    ACKNOWLEDGED = "acknowledged"
    ASSIGNED = "assigned"
    COMMENT = "comment"
    STATUS_CHANGED = "status_changed"
    RESOLVED = "resolved"
    CLOSED = "closed"
    REOPENED = "reopened"
    DEADLINES_CHANGED = "deadlines_changed"
    ESCALATED = "escalated"
    NOTIFICATION = "notification"
    FLAPPING_STARTED = "flapping_started"
    FLAPPING_STOPPED = "flapping_stopped"
    ALARM_GROUPED = "alarm_grouped"
    DISPATCH = "dispatch"
    PLAN_CHANGED = "plan_changed"
    CUSTOMER_CONFIRMED = "customer_confirmed"
    PAGED = "paged"


SYSTEM_ACTOR = "system"


def agent_actor(agent_id: int) -> str:
    """The `who` of history entries caused by an agent's events."""
    return f"agent:{agent_id}"
