"""HQ settings: one frozen model, built from the CLI and the environment, validated once."""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hq_server.core.passwords import DEFAULT_MIN_LENGTH, LOWEST_MIN_LENGTH, MAX_LENGTH
from protocol.wire import MAX_HEARTBEAT_DEVICES

ENV_DB_URL = "STATIONWATCH_DB_URL"
ENV_DATA_DIR = "STATIONWATCH_DATA_DIR"
DEFAULT_DATA_DIR = Path("./var/hq")
SQLITE_FILE_NAME = "hq.sqlite3"
KiB = 1024
MiB = 1024 * KiB
# Settings also read from STATIONWATCH_<NAME> (durations in seconds, webhook_secrets as JSON,
# trusted_proxies comma-separated).
ENV_TUNABLES = (
    "scheduler_enabled",
    "scheduler_interval",
    "heartbeat_timeout",
    "reopen_window",
    "flap_window",
    "flap_high",
    "flap_low",
    "outage_min_devices",
    "on_duty_engineer",
    "smtp_host",
    "smtp_port",
    "smtp_sender",
    "smtp_timeout",
    "webhook_timeout",
    "webhook_secrets",
    "allow_private_webhooks",
    "secret_key_file",
    "notify_max_attempts",
    "notify_backoff",
    "console_url",
    "smtp_security",
    "channel_allow_insecure",
    "channel_extra_hosts",
    "page_rate_limit",
    "page_rate_window",
    "page_digest_delay",
    "digest_time",
    "page_connect_timeout",
    "page_read_timeout",
    "page_undelivered_after",
    "contact_unreachable_after",
    "clock_offset_file",
    "login_max_failures",
    "login_failure_window",
    "login_lockout",
    "max_body_bytes",
    "max_anonymous_body_bytes",
    "max_json_items",
    "max_json_depth",
    "trusted_proxies",
    "max_connections",
    "keep_alive_timeout",
    "header_timeout",
    "body_timeout",
    "max_header_bytes",
    "listen_backlog",
    "user_token_lifetime",
    "api_token_lifetime",
    "password_min_length",
    "heartbeat_max_devices",
    "event_max_ahead",
    "console_idle_timeout",
    "console_session_lifetime",
    "console_live_poll",
)


class Settings(BaseModel):
    """Everything HQ needs to start; the clock is injected separately (see hq_server.core.clock)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = DEFAULT_DATA_DIR
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; default SQLite in data_dir (postgresql+psycopg://... for PG)",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    allow_remote: bool = False
    enrollment_ttl: timedelta = timedelta(hours=24)
    max_body_bytes: int = Field(
        default=20 * MiB, ge=1024, description="Limit on a request body, after gzip decompression"
    )
    max_anonymous_body_bytes: int = Field(
        default=8 * KiB,
        ge=1024,
        description="Limit on the body of a call without a bearer token (login, enrollment), "
        "after gzip decompression",
    )
    max_json_items: int = Field(
        default=500_000,
        ge=100,
        description="Values (objects, arrays, strings, numbers...) a JSON body may hold; counted "
        "before it is parsed (a batch of 5,000 events holds about 75,000)",
    )
    max_json_depth: int = Field(
        default=32, ge=4, le=256, description="Nesting of arrays and objects in a JSON body"
    )
    # The HTTP server (`hq serve`): what an idle or slow client may hold.
    trusted_proxies: tuple[str, ...] = Field(
        default=(),
        description="Addresses or networks of reverse proxies whose X-Forwarded-For / "
        "X-Real-IP name the client (login throttle, audit); empty: never trusted",
    )
    max_connections: int = Field(
        default=4096,
        ge=16,
        description="Connections open at once; past it a new one is closed at once, and "
        "requests are answered 503 while HQ is at the limit",
    )
    keep_alive_timeout: int = Field(
        default=5, ge=1, description="Seconds an idle kept-alive connection stays open"
    )
    header_timeout: float = Field(
        default=10.0,
        gt=0,
        description="Seconds a client has to send a request's headers, from its connection or "
        "its first byte; then the connection is closed",
    )
    body_timeout: float = Field(
        default=60.0,
        gt=0,
        description="Seconds a client has to send a request's whole body once its headers are "
        "in; then it is answered 408 and the connection is closed",
    )
    max_header_bytes: int = Field(
        default=16 * KiB, ge=1024, description="Limit on a request line and its headers"
    )
    listen_backlog: int = Field(
        default=2048, ge=16, description="Connections the kernel queues before HQ accepts them"
    )
    max_batch_retries: int = Field(
        default=3,
        ge=1,
        description="Attempts at an event batch on a deadlock/serialization failure",
    )
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)
    event_max_ahead: timedelta = Field(
        default=timedelta(minutes=5),
        ge=timedelta(0),
        description="An event observed further ahead of HQ's clock (a station clock running "
        "fast) is stored with HQ's receive time (hq_server.alarms.intake)",
    )
    # Login throttling (hq_server.access.throttle): counted per HQ process, in memory.
    login_max_failures: int = Field(
        default=5,
        ge=1,
        description="Failed logins for one user name or from one address that lock it out",
    )
    login_failure_window: timedelta = Field(
        default=timedelta(minutes=15),
        gt=timedelta(0),
        description="Failures older than this are forgotten",
    )
    login_lockout: timedelta = Field(
        default=timedelta(minutes=15),
        gt=timedelta(0),
        description="How long a locked-out login is refused",
    )
    # Accounts (hq_server.access.users, hq_server.access.auth): agent tokens never expire, user
    # tokens do.
    user_token_lifetime: timedelta = Field(
        default=timedelta(hours=12),
        gt=timedelta(0),
        description="Lifetime of a token from a login (POST /api/v1/auth/token)",
    )
    api_token_lifetime: timedelta = Field(
        default=timedelta(days=90),
        gt=timedelta(0),
        description="Lifetime of a token from `hq token create` when --days is not given",
    )
    password_min_length: int = Field(
        default=DEFAULT_MIN_LENGTH,
        ge=LOWEST_MIN_LENGTH,
        le=MAX_LENGTH,
        description="Shortest password accepted (for every role)",
    )
    # The console (hq_server.web): login sessions kept server side (hq_server.access.sessions).
    console_idle_timeout: timedelta = Field(
        default=timedelta(hours=2),
        gt=timedelta(0),
        description="A console session unused this long ends (watching live updates does not "
        "count as use); the next page asks for the password again",
    )
    console_session_lifetime: timedelta = Field(
        default=timedelta(hours=12),
        gt=timedelta(0),
        description="A console session ends this long after its login, however busy",
    )
    console_live_poll: float = Field(
        default=5.0,
        gt=0,
        description="Seconds between the console's looks at PostgreSQL for changes made by "
        "other HQ replicas (live updates); SQLite has one HQ process and is not polled",
    )
    heartbeat_max_devices: int = Field(
        default=MAX_HEARTBEAT_DEVICES,
        ge=1,
        le=MAX_HEARTBEAT_DEVICES,
        description="Devices one heartbeat may name; a larger heartbeat is refused with 413",
    )

    # The scheduler loop (escalations, notifications, dead-man's switch, maintenance windows).
    scheduler_enabled: bool = Field(
        default=True, description="Run the scheduler loop in this process (tests drive it)"
    )
    scheduler_interval: float = Field(default=5.0, gt=0, description="Seconds between steps")
    job_schedules_enabled: bool = Field(
        default=True,
        description="Run APScheduler for job schedules (hq_server.jobs.schedules)",
    )
    job_poll_max_wait: int = Field(
        default=30, ge=0, le=30, description="Cap on an agent's job long poll, seconds"
    )
    heartbeat_timeout: timedelta = Field(
        default=timedelta(seconds=180), description="Silence after which a site is unreachable"
    )
    # Alarm behaviour.
    reopen_window: timedelta = Field(
        default=timedelta(minutes=30),
        description="A fault raised again this soon after its ticket was resolved reopens it",
    )
    flap_window: int = Field(default=11, ge=3, le=32, description="States kept per alarm")
    flap_high: float = Field(default=50.0, gt=0, le=100, description="Start flapping at %")
    flap_low: float = Field(default=25.0, ge=0, le=100, description="Stop flapping below %")
    outage_min_devices: int = Field(
        default=3, ge=2, description="Unreachable devices at one site grouped as a site outage"
    )
    on_duty_engineer: str = Field(default="", description="Set on every new ticket")
    # Notifications.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "stationwatch-hq@localhost"
    smtp_timeout: float = Field(default=10.0, gt=0)
    webhook_timeout: float = Field(default=10.0, gt=0)
    allow_private_webhooks: bool = Field(
        default=False,
        description="Let webhooks go to loopback, private, link-local and other non-public "
        "addresses (refused by default: HQ would reach into its own network for whoever can "
        "edit a chain)",
    )
    webhook_secrets: dict[str, str] = Field(
        default_factory=dict, description="HMAC secret per webhook URL (the chain may set one)"
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="HQ's key sealing webhook keys in the database (default data_dir/secret.key; "
        "written, mode 0600, at HQ's first start; the same file on every replica)",
    )
    notify_max_attempts: int = Field(default=5, ge=1, le=50)
    notify_backoff: timedelta = Field(
        default=timedelta(seconds=30), description="First retry delay; doubles per attempt"
    )

    # Paging (hq_server.oncall, hq_server.tickets.paging).
    console_url: str = Field(
        default="http://127.0.0.1:8080",
        pattern=r"^https?://[^\s/]+(/[^\s]*)?$",
        description="The console's public URL: pages link to {console_url}/tickets/{id}",
    )
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="none", description="How pages by e-mail reach smtp_host"
    )
    channel_allow_insecure: bool = Field(
        default=False, description="Accept http:// channel URLs and SMTP without TLS (tests)"
    )
    channel_extra_hosts: tuple[str, ...] = Field(
        default=(),
        description="Hosts accepted for channels besides each vendor's own (a relay; tests)",
    )
    page_rate_limit: int = Field(
        default=5,
        ge=1,
        le=1000,
        description="Pages per contact per page_rate_window; the rest go into one digest",
    )
    page_rate_window: timedelta = Field(default=timedelta(minutes=10))
    page_digest_delay: timedelta = Field(
        default=timedelta(minutes=2),
        description="A contact over the rate limit gets the digest this long after the first "
        "ticket held back",
    )
    digest_time: str = Field(
        default="08:00",
        pattern=r"^([01]\d|2[0-3]):[0-5]\d$",
        description="Local time (the team's zone) of the daily digest",
    )
    page_connect_timeout: float = Field(default=3.0, gt=0)
    page_read_timeout: float = Field(default=5.0, gt=0)
    page_undelivered_after: timedelta = Field(
        default=timedelta(minutes=1),
        description="A page no channel delivered within this raises an alarm to the team's "
        "backup and service manager",
    )
    contact_unreachable_after: int = Field(
        default=3, ge=1, description="Failures in a row that show a contact's channel failing"
    )

    clock_offset_file: Path | None = Field(
        default=None,
        description="Tests only: HQ's clock runs this many seconds (read from the file at each "
        "reading) ahead of the wall clock",
    )

    @field_validator("channel_extra_hosts", mode="before")
    @classmethod
    def _host_list(cls, value: Any) -> Any:
        """A comma-separated string (from the environment) as a list."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxy_list(cls, value: Any) -> Any:
        """A comma-separated string (from the environment) as a list."""
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        """Each entry an IP address or network, kept in its normal form."""
        normal = []
        for entry in value:
            try:
                normal.append(str(ipaddress.ip_network(entry, strict=False)))
            except ValueError:
                raise ValueError(
                    f"trusted_proxies: {entry!r} is not an IP address or network "
                    "(e.g. 127.0.0.1, 10.0.0.0/8, ::1)"
                ) from None
        return tuple(normal)

    @property
    def database_url(self) -> str:
        """The URL to connect to: db_url if set, otherwise the SQLite file in data_dir."""
        if self.db_url:
            return self.db_url
        return f"sqlite:///{(self.data_dir / SQLITE_FILE_NAME).resolve()}"

    @property
    def uses_default_sqlite(self) -> bool:
        """True when HQ uses the SQLite file in data_dir (so data_dir must exist)."""
        return not self.db_url

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from STATIONWATCH_* variables, then explicit non-None overrides on top."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        if env.get(ENV_DATA_DIR):
            values["data_dir"] = Path(env[ENV_DATA_DIR])
        if env.get(ENV_DB_URL):
            values["db_url"] = env[ENV_DB_URL]
        for name in ENV_TUNABLES:
            raw = env.get(f"STATIONWATCH_{name.upper()}")
            if not raw:
                continue
            if name == "webhook_secrets":
                values[name] = json.loads(raw)
            elif cls.model_fields[name].annotation in (timedelta, "timedelta"):
                values[name] = timedelta(seconds=float(raw))
            else:
                values[name] = raw
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
