"""Tickets keep their title case-folded, for search in any script: tickets.title_folded.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

The ticket search (`q`) compared lower(title): SQLite's lower() and LIKE fold ASCII letters
only, so "σφάλμα" never found "Σφάλμα πομπού"; PostgreSQL's lower() folds as the database's
locale does (nothing beyond ASCII under LC_CTYPE=C) and turns a final Σ into σ where Python
turns it into ς. The folded title is computed in Python when a ticket opens and searched with a
plain LIKE on both databases. Existing tickets are folded here.

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
tickets = sa.table(
    "tickets",
    sa.column("id", sa.Integer()),
    sa.column("title", sa.String()),
    sa.column("title_folded", sa.Text()),
)


def fold(text: str) -> str:
    """A copy of hq_server.tickets.fold as it was at this revision."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


def upgrade() -> None:
    with op.batch_alter_table("tickets") as batch:
        batch.add_column(
            sa.Column(
                "title_folded",
                sa.Text(),
                nullable=False,
                server_default="",  # a string, not text(): SQLite adds the column in place
                comment="the title case-folded (NFKC, casefold), for search",
            )
        )
    bind = op.get_bind()
    stmt = (
        sa.update(tickets)
        .where(tickets.c.id == sa.bindparam("ticket_id"))
        .values(title_folded=sa.bindparam("folded"))
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(tickets.c.id, tickets.c.title)
            .where(tickets.c.id > last)
            .order_by(tickets.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            break
        bind.execute(stmt, [{"ticket_id": i, "folded": fold(title)} for i, title in rows])
        last = rows[-1][0]


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # SQLite (3.35 and later) drops a plain column in place. Batch mode would copy the
        # table and drop the old one, which the foreign keys to tickets forbid while HQ's
        # connection enforces them.
        op.execute("ALTER TABLE tickets DROP COLUMN title_folded")
    else:
        op.drop_column("tickets", "title_folded")
