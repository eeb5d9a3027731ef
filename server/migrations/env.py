"""Alembic environment: always run from server.store.migrate() with a connection (no alembic.ini needed)."""

from __future__ import annotations

from alembic import context

from server.store import metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite cannot ALTER most things in place: batch mode copies the table, on SQLite only.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
