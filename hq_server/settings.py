"""HQ settings: one frozen model, built from the CLI and the environment, validated once."""

from __future__ import annotations

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
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
