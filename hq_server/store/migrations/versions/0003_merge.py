"""Merge the SLA/escalation and jobs/backups branches into one head.

Revision ID: 0003
Revises: 0002, 0002j
"""

from __future__ import annotations

revision: str = "0003"
down_revision: tuple[str, str] = ("0002", "0002j")
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    """Nothing to do: both branches' tables already exist."""


def downgrade() -> None:
    """Nothing to undo."""
