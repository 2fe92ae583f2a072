"""HQ settings: one frozen model, built from the CLI and the environment, validated once."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

ENV_DB_URL = "STATIONWATCH_DB_URL"
ENV_DATA_DIR = "STATIONWATCH_DATA_DIR"
DEFAULT_DATA_DIR = Path("./var/hq")
SQLITE_FILE_NAME = "hq.sqlite3"
MiB = 1024 * 1024
# Settings also read from STATIONWATCH_<NAME> (durations in seconds, webhook_secrets as JSON).
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
    "secret_key_file",
    "notify_max_attempts",
    "notify_backoff",
    "login_max_failures",
    "login_failure_window",
    "login_lockout",
    "event_max_ahead",
)


class Settings(BaseModel):
    """Everything HQ needs to start; the clock is injected separately (see hq_server.clock)."""

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
        "fast) is stored with HQ's receive time (hq_server.intake)",
    )
    # Login throttling (hq_server.login_throttle): counted per HQ process, in memory.
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

    # The scheduler loop (escalations, notifications, dead-man's switch, maintenance windows).
    scheduler_enabled: bool = Field(
        default=True, description="Run the scheduler loop in this process (tests drive it)"
    )
    scheduler_interval: float = Field(default=5.0, gt=0, description="Seconds between steps")
    job_schedules_enabled: bool = Field(
        default=True, description="Run APScheduler for job schedules (hq_server.schedules)"
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
