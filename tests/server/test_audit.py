"""The audit log's hash chain: real entries from real actions; any edit or deletion is found."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import delete, func, insert, select, update

from server import audit
from server.app import open_store
from server.config import load_server_config
from server.inventory import load_inventory
from server.store import audit_head, audit_log
from server.users import add_user, new_token
from tests.conftest import make_server_files
from tests.helpers import ALWAYS_CLOSED

NOW = datetime(2026, 11, 26, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path):
    config = load_server_config(make_server_files(tmp_path, "mqtt://127.0.0.1:1",
                                                  [("venue-a", "t-one", ALWAYS_CLOSED, ["pi-a"])]))
    inventory = load_inventory(config.inventory)
    engine = open_store(config, inventory)
    add_user(engine, inventory, "admin", "county_admin", None, "correct horse battery")
    new_token(engine, "admin")
    with engine.begin() as conn:
        for n in range(5):
            audit.record(conn, NOW, "duty-one", "alert_ack", str(n), {"note": f"看过了 {n}", "n": n})
    yield engine, config, inventory
    engine.dispose()


def _ids(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(audit_log.c.id).order_by(audit_log.c.id)).scalars())


def test_an_untouched_chain_verifies(store) -> None:
    engine, *_ = store
    verdict = audit.verify(engine)
    assert verdict.ok, verdict.problems
    assert verdict.entries == 7  # user_add, token_add, five acks
    with engine.connect() as conn:
        assert conn.execute(select(audit_head.c.last_hash)).scalar() == verdict.head_hash != audit.GENESIS


def test_an_edited_entry_is_found(store) -> None:
    engine, *_ = store
    target = _ids(engine)[3]
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == target).values(detail={"note": "改过了", "n": 1}))
    verdict = audit.verify(engine)
    assert not verdict.ok
    assert any(f"entry {target} " in p and "changed" in p for p in verdict.problems), verdict.problems


def test_a_changed_actor_or_time_is_found(store) -> None:
    engine, *_ = store
    first, second = _ids(engine)[2:4]
    with engine.begin() as conn:
        conn.execute(update(audit_log).where(audit_log.c.id == first).values(actor="someone-else"))
        conn.execute(update(audit_log).where(audit_log.c.id == second).values(at=datetime(2026, 1, 1, tzinfo=UTC)))
    problems = audit.verify(engine).problems
    assert any(f"entry {first} " in p for p in problems) and any(f"entry {second} " in p for p in problems)


def test_a_deleted_entry_is_found(store) -> None:
    engine, *_ = store
    ids = _ids(engine)
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id == ids[2]))
    problems = audit.verify(engine).problems
    assert any(f"entry {ids[3]} " in p and "deleted" in p for p in problems), problems


def test_deleting_the_newest_entries_is_found(store) -> None:
    engine, *_ = store
    ids = _ids(engine)
    with engine.begin() as conn:
        conn.execute(delete(audit_log).where(audit_log.c.id >= ids[-2]))
    problems = audit.verify(engine).problems
    assert any("newest entries are missing" in p for p in problems), problems


def test_concurrent_writers_keep_one_chain(store) -> None:
    engine, *_ = store
    errors: list[BaseException] = []

    def write(who: str) -> None:
        try:
            for n in range(40):
                with engine.begin() as conn:
                    audit.record(conn, NOW, who, "snapshot_view", f"{who}/{n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"user-{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    verdict = audit.verify(engine)
    assert verdict.ok, verdict.problems
    assert verdict.entries == 7 + 120


def test_entries_from_before_the_chain_are_sealed_at_start(store) -> None:
    engine, config, inventory = store
    with engine.begin() as conn:  # what an older release wrote: no hashes
        conn.execute(insert(audit_log), [{"at": NOW, "actor": "old", "action": "login", "target": None,
                                          "detail": {"n": n}} for n in range(3)])
    assert any("no hash" in p for p in audit.verify(engine).problems)
    open_store(config, inventory).dispose()  # the upgraded server starts
    verdict = audit.verify(engine)
    assert verdict.ok and verdict.entries == 10


def test_audit_verify_command(store, capsys) -> None:
    from server.cli import main

    engine, config, _inventory = store
    path = str(config.data_dir.parent / "server.yaml")
    assert main(["audit", "verify", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "7 entries" in out and audit.verify(engine).head_hash in out
    with engine.begin() as conn:
        last = conn.execute(select(func.max(audit_log.c.id))).scalar()
        conn.execute(update(audit_log).where(audit_log.c.id == last).values(target="99"))
    assert main(["audit", "verify", "--config", path]) == 1
    assert f"entry {last} " in capsys.readouterr().out
