"""The audit log as a hash chain: each entry carries the hash of the one before it.

Editing an entry changes its hash; deleting one breaks the next entry's link; deleting the newest ones no
longer matches the chain's head (`audit_head`). `venuewatch audit verify` walks the chain and names what
is wrong. Someone with write access to the whole database can still rewrite the chain from the tampered
entry on: write the head hash down somewhere else now and then (the verify command prints it) to anchor it.

Every audit entry goes through `record`, inside the caller's transaction, so the entry commits or rolls
back with what it records. Writers are serialised on the head row: two processes never link to the same
predecessor.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update

from server.store import audit_head, audit_log, insert_ignore

GENESIS = "0" * 64


def entry_hash(prev_hash: str, at: datetime, actor: str, action: str, target: str | None,
               detail: Any) -> str:
    """sha256 over the previous hash and the entry's fields, as canonical JSON."""
    body = json.dumps([prev_hash, at.isoformat(timespec="microseconds"), actor, action, target, detail],
                      ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def _lock_head(conn: Connection) -> Any:
    """Take the head row for this transaction (the UPDATE takes the write lock first) and return it."""
    bumped = conn.execute(update(audit_head).where(audit_head.c.id == 1).values(count=audit_head.c.count)).rowcount
    if not bumped:
        conn.execute(insert_ignore(conn.dialect.name, audit_head).values(id=1, last_id=0, last_hash=GENESIS, count=0))
        conn.execute(update(audit_head).where(audit_head.c.id == 1).values(count=audit_head.c.count))
    return conn.execute(select(audit_head).where(audit_head.c.id == 1)).one()


def record(conn: Connection, at: datetime, actor: str, action: str, target: str | None = None,
           detail: Any = None) -> str:
    """Append one entry to the chain within `conn`'s transaction; returns its hash."""
    head = _lock_head(conn)
    actor = actor[:64]
    digest = entry_hash(head.last_hash, at, actor, action, target, detail)
    new_id = conn.execute(insert(audit_log).values(at=at, actor=actor, action=action, target=target, detail=detail,
                                                   prev_hash=head.last_hash, hash=digest)).inserted_primary_key[0]
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_id=new_id, last_hash=digest,
                                                                       count=head.count + 1))
    return digest


def seal_unchained(engine: Engine) -> int:
    """Chain entries written before the chain existed (an older data dir), oldest first. Returns how many."""
    with engine.begin() as conn:
        head = _lock_head(conn)
        rows = conn.execute(select(audit_log).where(audit_log.c.hash.is_(None), audit_log.c.id > head.last_id)
                            .order_by(audit_log.c.id)).all()
        prev, last_id, count = head.last_hash, head.last_id, head.count
        for row in rows:
            digest = entry_hash(prev, row.at, row.actor, row.action, row.target, row.detail)
            conn.execute(update(audit_log).where(audit_log.c.id == row.id).values(prev_hash=prev, hash=digest))
            prev, last_id, count = digest, row.id, count + 1
        if rows:
            conn.execute(update(audit_head).where(audit_head.c.id == 1).values(last_id=last_id, last_hash=prev,
                                                                               count=count))
    return len(rows)


@dataclass
class Verdict:
    entries: int = 0
    head_hash: str = GENESIS
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(engine: Engine, max_problems: int = 20) -> Verdict:
    """Walk the chain oldest first and report every broken link, changed entry or missing tail."""
    verdict = Verdict()
    prev, last_id = GENESIS, 0
    with engine.connect() as conn:
        head = conn.execute(select(audit_head).where(audit_head.c.id == 1)).first()
        for row in conn.execute(select(audit_log).order_by(audit_log.c.id)):
            verdict.entries += 1
            if row.hash is None:
                verdict.problems.append(f"entry {row.id} ({row.action}) has no hash: written around the chain")
            elif row.prev_hash != prev:
                verdict.problems.append(f"entry {row.id} ({row.action}) does not follow entry {last_id}: "
                                        "entries between them were deleted or the chain was re-ordered")
            elif entry_hash(prev, row.at, row.actor, row.action, row.target, row.detail) != row.hash:
                verdict.problems.append(f"entry {row.id} ({row.action} by {row.actor}) was changed after it "
                                        "was written")
            prev, last_id = row.hash or prev, row.id
            if len(verdict.problems) >= max_problems:
                verdict.problems.append("… stopped after this many problems")
                return verdict
    verdict.head_hash = prev
    if head is None:
        if verdict.entries:
            verdict.problems.append("the chain head is missing")
    elif (head.last_id, head.last_hash, head.count) != (last_id, prev, verdict.entries):
        verdict.problems.append(f"the newest entries are missing: the head says {head.count} entries up to entry "
                                f"{head.last_id}, the log ends at entry {last_id} with {verdict.entries}")
    return verdict
