"""alerts.once_key: a once-only alert is unique in the database, not only by a check before the insert

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 22:00:00

Several ingest processes (`venuewatch server --role ingest`) may handle the same door event at once (a
broker redelivery to another member of the shared subscription). The existing rows get their key copied for
alerts that are once-only by rule, so an old opening cannot be raised again either.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Keys of the alerts raised once per key (server/rules.py: OpenAlert(once=True)).
ONCE_PREFIXES = ("door_after_hours:", "door_held_open:", "door_no_motion:", "venue_not_opened:", "shift_unstaffed:")


def upgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("once_key", sa.String(length=200), nullable=True))
        batch_op.create_unique_constraint("uq_alerts_once_key", ["once_key"])
    # One row per key: the oldest alert keeps it (a duplicate raised by an older release keeps NULL).
    once = " OR ".join(f"key LIKE '{prefix}%'" for prefix in ONCE_PREFIXES)
    op.execute(f"UPDATE alerts SET once_key = key WHERE id IN (SELECT MIN(id) FROM alerts WHERE {once} GROUP BY key)")


def downgrade() -> None:
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_constraint("uq_alerts_once_key", type_="unique")
        batch_op.drop_column("once_key")
