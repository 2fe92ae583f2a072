"""HQ remembers which key seals its webhook keys: table hq_facts.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05

Row `secret_key` holds a fingerprint of the key file webhook keys are sealed with
(hq_server.secretbox), so that an HQ started with another key file, or none, refuses to start
instead of making a new key and sealing with it. The row is written at HQ's first start with
the key file, not here: a migration may run where the key file is not.

Frozen copy of the schema at this revision: it must not import hq_server.models.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "hq_facts",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_hq_facts"),
    )


def downgrade() -> None:
    op.drop_table("hq_facts")
