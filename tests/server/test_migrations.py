"""The schema is managed by Alembic (server/migrations): from the first migration to head it must give exactly
the models of server/store.py, on SQLite and (with `pytest --database postgresql`) on PostgreSQL."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, inspect, select, text

from server.store import MIGRATIONS, alembic_config, create_schema, events, make_engine, metadata
from tests import conftest


def engine_for(tmp_path):
    return make_engine(conftest.database_url() or f"sqlite:///{tmp_path / 'store.db'}")


def drift(engine) -> list:
    with engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)


def test_upgrading_from_the_first_migration_one_step_at_a_time_gives_the_models(tmp_path):
    engine = engine_for(tmp_path)
    with engine.connect() as conn:
        script = ScriptDirectory.from_config(alembic_config(conn))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions[0] == "0001"
    for revision in revisions:
        create_schema(engine, revision)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == revision
    # A model changed without a migration fails here: write one with `alembic revision --autogenerate`
    # (docs/operations.md#upgrade).
    assert drift(engine) == []
    create_schema(engine)  # at head: nothing to do, nothing breaks
    engine.dispose()


def test_a_data_dir_from_before_the_migrations_keeps_its_data_and_is_stamped(tmp_path):
    engine = engine_for(tmp_path)
    # What 0.1 before the migrations left: no alembic_version, the newest tables missing, and an events table
    # without a later column.
    legacy = MetaData()
    for table in metadata.sorted_tables:
        if table.name not in ("rollups_minute", "timeseries_outbox"):
            table.to_metadata(legacy)
    legacy.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE events DROP COLUMN late"))
        conn.execute(text("INSERT INTO events (id, device, venue_id, seq, kind, sensor, state, ts, occurred_at, "
                          "time_source, received_at, boot, mono, synced, payload) VALUES ('EV1', 'pi-a', 'venue-a', "
                          "1, 'door', 'front', 'open', '2026-11-01 08:00:00', '2026-11-01 08:00:00', 'device', "
                          "'2026-11-01 08:00:01', 'b1', 1.0, true, '{}')"))
    create_schema(engine)
    found = inspect(engine)
    assert {"rollups_minute", "timeseries_outbox"} <= set(found.get_table_names())
    assert "late" in {c["name"] for c in found.get_columns("events")}
    with engine.connect() as conn:
        assert conn.execute(select(events.c.id)).scalars().all() == ["EV1"]
        head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
    engine.dispose()


def test_the_migrations_ship_with_the_package():
    assert (MIGRATIONS / "env.py").is_file() and (MIGRATIONS / "script.py.mako").is_file()
    assert list((MIGRATIONS / "versions").glob("0001_*.py"))
    assert command  # the alembic command API the server uses at start


def test_0002_makes_existing_once_only_alerts_unique_keeping_the_oldest(tmp_path):
    engine = engine_for(tmp_path)
    create_schema(engine, "0001")
    row = ("INSERT INTO alerts (rule, severity, status, venue_id, key, opened_at, notes, event_ids, detail) "
           "VALUES (:rule, 'critical', 'resolved', 'venue-a', :key, '2026-11-01 08:00:00', '[]', '[]', '{}')")
    with engine.begin() as conn:
        for rule, key in (("door_after_hours", "door_after_hours:EV1"), ("door_after_hours", "door_after_hours:EV1"),
                          ("sensor_fault", "door_no_motion:EV2"), ("device_offline", "device_offline:pi-a")):
            conn.execute(text(row), {"rule": rule, "key": key})
    create_schema(engine)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, key, once_key FROM alerts ORDER BY id")).all()
    # An older release raised one opening twice: the first keeps the key, so it can never be raised again.
    assert [(r.key, r.once_key) for r in rows] == [
        ("door_after_hours:EV1", "door_after_hours:EV1"), ("door_after_hours:EV1", None),
        ("door_no_motion:EV2", "door_no_motion:EV2"), ("device_offline:pi-a", None)]
    engine.dispose()
