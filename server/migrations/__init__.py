"""Alembic migrations of the server's SQL store (SQLite and PostgreSQL). See docs/operations.md#upgrade."""
