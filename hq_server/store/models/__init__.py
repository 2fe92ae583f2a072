"""HQ's tables, one module per concept; importing the package loads them all, so that
`Base.metadata` (alembic's target, hq_server/store/migrations/env.py) holds every table.

    base     the declarative base, naming convention, UTC datetimes
    sites    sites, agents, enrollment tokens
    access   users, API tokens, console sessions, the audit log, HQ's facts
    alarms   events, alarms
    customers customers, their contacts, SLA policies of their contracts
    tickets  tickets, their history, numbers and grouped alarms, calendars, escalation chains,
             maintenance windows, notifications
    jobs     jobs, job items, schedules (and APScheduler's table), config backups
    oncall   on-call teams, rotations, overrides, engineers' contact methods, paging policies,
             tickets' paging state, digest items
"""

from hq_server.store.models.access import ApiToken, AuditEntry, HqFact, User, WebSession
from hq_server.store.models.alarms import Alarm, Event
from hq_server.store.models.base import NAMING_CONVENTION, Base, BigId, UTCDateTime
from hq_server.store.models.customers import CUSTOMER_LANGUAGES, Contact, Customer, SlaPolicy
from hq_server.store.models.jobs import (
    APSCHEDULER_TABLE,
    FINISHED_STATES,
    HELD_STATES,
    ConfigBackupRecord,
    JobItemRecord,
    JobRecord,
    JobSchedule,
    JobState,
    apscheduler_jobs,
)
from hq_server.store.models.oncall import (
    EngineerContact,
    OncallOverride,
    OncallRotation,
    OncallTeam,
    PageDigestItem,
    PagingPolicy,
    TicketPaging,
)
from hq_server.store.models.sites import Agent, EnrollmentToken, Site
from hq_server.store.models.tickets import (
    OPEN_TICKET_PREDICATE,
    Calendar,
    EscalationChain,
    MaintenanceWindow,
    Notification,
    Ticket,
    TicketAlarmLink,
    TicketCounter,
    TicketEvent,
)

__all__ = [
    "APSCHEDULER_TABLE",
    "CUSTOMER_LANGUAGES",
    "FINISHED_STATES",
    "HELD_STATES",
    "NAMING_CONVENTION",
    "OPEN_TICKET_PREDICATE",
    "Agent",
    "Alarm",
    "ApiToken",
    "AuditEntry",
    "Base",
    "BigId",
    "Calendar",
    "ConfigBackupRecord",
    "Contact",
    "Customer",
    "EngineerContact",
    "EnrollmentToken",
    "EscalationChain",
    "Event",
    "HqFact",
    "JobItemRecord",
    "JobRecord",
    "JobSchedule",
    "JobState",
    "MaintenanceWindow",
    "Notification",
    "OncallOverride",
    "OncallRotation",
    "OncallTeam",
    "PageDigestItem",
    "PagingPolicy",
    "Site",
    "SlaPolicy",
    "Ticket",
    "TicketAlarmLink",
    "TicketCounter",
    "TicketEvent",
    "TicketPaging",
    "UTCDateTime",
    "User",
    "WebSession",
    "apscheduler_jobs",
]
