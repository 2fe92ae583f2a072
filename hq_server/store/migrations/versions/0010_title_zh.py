"""Alarms and tickets keep the fault's title in Simplified Chinese: alarms.title_zh,
tickets.title_zh.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-05

Device profiles may give a rule's title in Chinese beside its English one (`title_zh`); the
agent sends it with the fault event (left out while empty) and HQ keeps it on the alarm and on
the ticket, so the console shows the title in the reader's language. Rows that exist at the
upgrade get '' (no Chinese title known): the console shows their English title. A downgrade
drops both columns; the English titles stay.

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COMMENT = "the title in Simplified Chinese, or ''"
COLUMNS = {"alarms": 200, "tickets": 300}


def upgrade() -> None:
    for table, length in COLUMNS.items():
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column(
                    "title_zh",
                    sa.String(length),
                    nullable=False,
                    server_default="",  # a string, not text(): SQLite adds the column in place
                    comment=COMMENT,
                )
            )


def downgrade() -> None:
    for table in COLUMNS:
        if op.get_bind().dialect.name == "sqlite":
            # SQLite (3.35 and later) drops a plain column in place. Batch mode would copy the
            # table and drop the old one, which the foreign keys to alarms and tickets forbid
            # while HQ's connection enforces them.
            op.execute(f"ALTER TABLE {table} DROP COLUMN title_zh")
        else:
            op.drop_column(table, "title_zh")
