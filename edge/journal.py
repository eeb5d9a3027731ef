"""The agent's durable outbox: everything the server must get is journaled here before it is published.

A row is appended (with its `seq`) before the message goes out and deleted only when the server's ack says
it is stored, so a power cut, a crash or a week without 4G loses nothing that fits the bounds.

Durability (fsync policy): one SQLite file in WAL mode with `synchronous=FULL`. Every append and every
ack is one committed transaction (BEGIN IMMEDIATE ... COMMIT), and FULL makes SQLite fsync the WAL
before COMMIT returns: when `append` returns, the row survives a power cut. WAL turns each commit into one
sequential append (gentler on a worn SD card than a rollback journal), a torn last frame is discarded
by its checksum on the next open, and an outside reader (diagnostics) never blocks the agent's writes.
Inside the agent one connection is shared by the emitter (append), paho's thread (ack) and the sender
(pending), serialised by a lock.

Bounds: the journal keeps at most `max_bytes` of payload, evicting the lowest priority first and the
oldest first within a priority (door and tamper events last; loss reports never: the server cannot
acknowledge past a lost seq until it has the report naming it), and drops rows older than `max_age_s` -
but only rows whose age can be trusted: a Pi has no real-time clock, so a row created before NTP synced
carries a meaningless time and is exempt from the age bound (the size bound still applies). Every
evicted row is recorded as a loss, and `report_losses` turns them into one HIGH event for the server.

Storage failures (full disk, read-only or failing card) never reach the caller: the row is kept in memory
(still pending, ackable, counted) and written with the next transaction that succeeds. Only a power cut
while the disk refuses writes loses such rows. A corrupt file is moved aside and a new journal (new id)
started, so the server does not mistake the new numbering for the old one.
"""

from __future__ import annotations

import bisect
import heapq
import logging
import math
import os
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

log = logging.getLogger("venuewatch.edge.journal")

LOW, NORMAL, HIGH = 0, 1, 2
LOSS = "loss"  # journal kind of a loss report; published as an ordinary event

MAX_REPORTED_RANGES = 1000  # per report: ~16 KB of JSON, well under the server's 64 KiB message limit
_AGE_CHECK_S = 60.0
_LOG_EVERY_S = 60.0
_EVICT_CHUNK = 256
_AGE_CHUNK = 5000  # rows dropped by one age check; more are dropped on the next append, to bound its time
_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)

_SCHEMA = (
    # payload is the last column so that scans of size/created never read a large payload's overflow pages.
    """CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY, kind TEXT NOT NULL,
       priority INTEGER NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL,
       created_synced INTEGER NOT NULL, payload BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS entries_victims ON entries (priority, seq)",
    "CREATE INDEX IF NOT EXISTS entries_age ON entries (created) WHERE created_synced = 1",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # Lost seqs not reported yet, as disjoint, non-adjacent ranges; and how many rows of each kind.
    "CREATE TABLE IF NOT EXISTS losses (first INTEGER PRIMARY KEY, last INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS lost_rows (kind TEXT PRIMARY KEY, rows INTEGER NOT NULL)",
)


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str  # the topic kind the uplink publishes it on: "event" or "telemetry"
    priority: int
    payload: bytes


class _Row(NamedTuple):
    seq: int
    kind: str
    priority: int
    payload: bytes
    created: float
    synced: bool


class _Victim(NamedTuple):  # ordered as eviction picks: lowest priority, then oldest
    priority: int
    seq: int
    kind: str
    size: int


class _CorruptFile(Exception):
    pass


class Journal:
    """A durable, bounded outbox of (seq, kind, priority, payload) rows; see the module docstring.

    Thread-safe. `build` callbacks run under the journal's lock (a payload must be made in seq order): they
    may read the journal (a heartbeat reports `backlog()`, an event carries `id` and `floor`), not change it.
    """

    id: str  # random, made with the file: a new file (new card, corrupt file replaced) is a new numbering
    floor: int  # every seq <= floor was acknowledged (or precedes this journal) and is gone
    last_seq: int  # the highest seq issued

    def __init__(self, path: Path, *, max_bytes: int = 256 * 2**20, max_age_s: float = 30 * 86400,
                 now: Callable[[], float] = time.time, synced: Callable[[], bool] = lambda: True,
                 first_seq: int = 1) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._now = now
        self._synced = synced
        self._lock = threading.RLock()  # reentrant for `build` callbacks that read the journal
        # Failed disk operations since open: every write that did not reach the disk (each append while the
        # journal lives in memory), and the rare failed read.
        self.write_errors = 0
        self._logged_at = -math.inf
        self._failing = False
        # Memory is the truth; the database is brought up to date by each transaction that succeeds.
        self._volatile: OrderedDict[int, _Row] = OrderedDict()  # rows not on disk yet, in seq order
        self._doomed: dict[int, int] = {}  # seq -> size: evicted, but the delete is not on disk yet
        self._dirty = self._floor_dirty = self._lost_dirty = self._loss_rewrite = self._stale_totals = False
        self._loss_ops: list[tuple[int, int]] = []  # merged loss ranges to write with the next transaction
        self._age_checked = -math.inf
        self._db = self._open(max(first_seq, 1))

    # -- public API -------------------------------------------------------------------------------------

    def append(self, kind: str, priority: int, build: Callable[[int], bytes]) -> int:
        """Journal a message as the next seq (its payload is `build(seq)`); durable when this returns."""
        with self._lock:
            seq = self.last_seq + 1
            self._add(seq, kind, priority, bytes(build(seq)))
            self._enforce_bounds()
            self._flush("append")
            return seq

    def pending(self, after: int, limit: int) -> list[Entry]:
        """Unacknowledged rows with seq > after, ascending, at most `limit` (one indexed query)."""
        with self._lock:
            after = max(after, self.floor)
            if limit <= 0:
                return []
            found: list[Entry] = []
            if self._db is not None:
                try:
                    rows = self._db.execute(
                        "SELECT seq, kind, priority, payload FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                        (after, limit + len(self._doomed))).fetchall()
                    found = [Entry(*r) for r in rows if r[0] not in self._doomed][:limit]
                except sqlite3.Error as exc:
                    self._storage_error("read", exc)
            if self._volatile:
                found += [Entry(r.seq, r.kind, r.priority, r.payload) for r in self._volatile.values() if r.seq > after]
                found.sort(key=lambda e: e.seq)
            return found[:limit]

    def ack(self, upto: int) -> int:
        """The server stored every seq <= upto: delete those rows. Returns how many were deleted.

        An ack beyond the last seq issued is ignored (it is for seqs this journal never made: another
        journal's, or a confused server), and an ack at or below the floor is a repeat.
        """
        with self._lock:
            if upto > self.last_seq or upto <= self.floor:
                return 0
            rows, size, counted = 0, 0, self._db is not None
            if self._db is not None:
                try:
                    rows, size = self._db.execute(
                        "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE seq > ? AND seq <= ?",
                        (self.floor, upto)).fetchone()
                except sqlite3.Error as exc:
                    self._storage_error("read", exc)
                    counted, self._stale_totals = False, True  # recounted after the next good transaction
            for seq in [s for s in self._doomed if s <= upto]:  # evicted, so not in the totals; floor deletes them
                doomed_size = self._doomed.pop(seq)
                if counted:
                    rows -= 1
                    size -= doomed_size
            while self._volatile and next(iter(self._volatile)) <= upto:
                _, row = self._volatile.popitem(last=False)
                rows += 1
                size += len(row.payload)
            self.floor = upto
            self._rows -= rows
            self._bytes -= size
            self._dirty = self._floor_dirty = True
            self._flush("ack")
            return rows

    def backlog(self) -> tuple[int, int]:
        """(rows, payload bytes) not acknowledged yet."""
        with self._lock:
            return self._rows, self._bytes

    def oldest_created(self) -> float | None:
        """When (by the journal's clock) the oldest row not acknowledged yet was made; None if there is none."""
        with self._lock:
            found: list[float] = []
            if self._db is not None:
                try:
                    rows = self._db.execute("SELECT seq, created FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
                                            (self.floor, len(self._doomed) + 1)).fetchall()
                    found = [created for seq, created in rows if seq not in self._doomed][:1]
                except sqlite3.Error as exc:
                    self._storage_error("read", exc)
            found += [row.created for row in self._volatile.values() if row.seq > self.floor][:1]
            return min(found, default=None)

    def report_losses(self, build: Callable[[int, dict[str, Any]], bytes]) -> int | None:
        """Turn rows dropped since the last report into a HIGH "loss" row; None if nothing was lost.

        The summary passed to `build(seq, summary)`: {"dropped": {kind: rows}, "seq_ranges": [[first, last],
        ...], "rows": seqs in these ranges, "more": bool}. Ranges are merged, ascending, and name exactly the
        lost seqs (the server closes them as lost: a range must never cover a seq that is still pending).
        At most MAX_REPORTED_RANGES ranges go in one report; with `more` true the caller asks again for the
        rest. `dropped` counts every lost row and comes with the first report of a batch of losses.
        The row and the clearing of what it reports are one transaction: a loss is reported once.
        """
        with self._lock:
            if not self._loss_first:
                return None
            seq = self.last_seq + 1
            for _ in range(4):
                ranges = [[first, last] for first, last in zip(self._loss_first, self._loss_last, strict=True)]
                chunk, rest = ranges[:MAX_REPORTED_RANGES], ranges[MAX_REPORTED_RANGES:]
                dropped = {"telemetry": 0, "event": 0, **self._lost} if self._lost else {}
                summary = {"dropped": dropped, "seq_ranges": chunk, "rows": sum(b - a + 1 for a, b in chunk),
                           "more": bool(rest)}
                payload = bytes(build(seq, summary))
                # Make room before adding it, so the report does not push out rows it does not tell of; if
                # that evicted more, build it again to include them.
                counts_before = dict(self._lost)
                self._reserve(len(payload))
                if self._lost == counts_before:
                    break
            # Whatever is lost and not named in this report stays for the next one (normally only `rest`). If the
            # last _reserve evicted more, a new loss may have merged into a range the report names: keep only the
            # seqs the report does not name, or they would be reported twice.
            left = _subtract(list(zip(self._loss_first, self._loss_last, strict=True)), [(a, b) for a, b in chunk])
            self._lost = {k: n - counts_before.get(k, 0) for k, n in self._lost.items() if n > counts_before.get(k, 0)}
            self._loss_first, self._loss_last = [a for a, _ in left], [b for _, b in left]
            self._loss_ops = []
            self._lost_dirty = self._loss_rewrite = True
            self._add(seq, LOSS, HIGH, payload)
            self._enforce_bounds()
            self._flush("report_losses")
            return seq

    def unacked_reports(self) -> list[Entry]:
        """Loss reports not acknowledged yet. They are sent ahead of the backlog: until the server has one,
        it cannot acknowledge past the first lost seq, so the backlog behind it could never drain."""
        with self._lock:
            found: list[Entry] = []
            if self._db is not None:
                try:
                    rows = self._db.execute("SELECT seq, kind, priority, payload FROM entries WHERE kind = ? "
                                            "AND seq > ? ORDER BY seq", (LOSS, self.floor)).fetchall()
                    found = [Entry(*r) for r in rows if r[0] not in self._doomed]
                except sqlite3.Error as exc:
                    self._storage_error("read", exc)
            found += [Entry(r.seq, r.kind, r.priority, r.payload) for r in self._volatile.values()
                      if r.kind == LOSS and r.seq > self.floor]
            return sorted(found, key=lambda e: e.seq)

    def close(self) -> None:
        with self._lock:
            if self._db is None:
                return
            if self._dirty:
                self._flush("close")
            try:
                self._db.close()
            except sqlite3.Error as exc:
                self._storage_error("close", exc)
            self._db = None

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening ----------------------------------------------------------------------------------------

    def _open(self, first_seq: int) -> sqlite3.Connection | None:
        try:
            try:
                return self._connect(first_seq)
            except _CorruptFile as exc:
                self._move_aside(exc)
                return self._connect(first_seq)
        except (sqlite3.Error, OSError, _CorruptFile) as exc:
            # Nothing on disk can be used: a journal in memory (new id, so its numbers cannot be confused
            # with those of the file we could not open) until the agent restarts.
            self._storage_error("open", exc)
            self._new_state(first_seq)
            return None

    def _new_state(self, first_seq: int) -> None:
        self.id = secrets.token_hex(8)
        self.last_seq = self.floor = first_seq - 1
        self._rows = self._bytes = 0
        self._lost: dict[str, int] = {}
        self._loss_first: list[int] = []
        self._loss_last: list[int] = []

    def _connect(self, first_seq: int) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            # After a big transaction (a mass eviction) give the space back instead of keeping a huge WAL.
            db.execute(f"PRAGMA journal_size_limit={16 * 2**20}")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _CorruptFile(f"quick_check: {check}")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            created = not meta
            self._new_state(first_seq)
            if not created:
                try:
                    self.id, self.last_seq, self.floor = meta["id"], int(meta["last_seq"]), int(meta["floor"])
                except (KeyError, ValueError) as exc:
                    raise _CorruptFile(f"meta table: {meta!r}") from exc
                # Numbers must never repeat: an older seq file may be ahead of the journal.
                self.last_seq = max(self.last_seq, first_seq - 1)
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [("id", self.id), ("last_seq", str(self.last_seq)), ("floor", str(self.floor))])
            db.execute("DELETE FROM entries WHERE seq <= ?", (self.floor,))
            self._rows, self._bytes = db.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").fetchone()
            for first, last in db.execute("SELECT first, last FROM losses ORDER BY first"):
                self._loss_first.append(first)
                self._loss_last.append(last)
            self._lost = dict(db.execute("SELECT kind, rows FROM lost_rows WHERE rows > 0").fetchall())
            db.execute("COMMIT")
            if created:
                _fsync_dir(self.path.parent)  # SQLite syncs the directory for its WAL, not for a new main file
        except sqlite3.DatabaseError as exc:
            db.close()
            if (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF in _CORRUPT_CODES:
                raise _CorruptFile(str(exc)) from exc
            raise
        except BaseException:
            db.close()
            raise
        return db

    def _move_aside(self, reason: Exception) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while target.exists():
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
            n += 1
        # SQLite checkpoints or deletes the WAL when the failed connection closes; should one be left, it goes
        # first: a new file next to the old WAL would have the old frames replayed into it.
        for suffix in ("-wal", "-shm", ""):
            source = self.path.with_name(self.path.name + suffix)
            if source.exists():
                os.replace(source, target.with_name(target.name + suffix))
        _fsync_dir(self.path.parent)
        log.error("event=journal_corrupt file=%s moved_to=%s error=%r", self.path, target, str(reason))

    # -- memory state, bounds and the transaction that persists them ----------------------------------

    def _add(self, seq: int, kind: str, priority: int, payload: bytes) -> None:
        self._volatile[seq] = _Row(seq, kind, priority, payload, self._now(), bool(self._synced()))
        self.last_seq = seq
        self._rows += 1
        self._bytes += len(payload)
        self._dirty = True

    def _enforce_bounds(self) -> None:
        self._evict_old()
        while self._bytes > self.max_bytes:
            chosen, excess = [], self._bytes - self.max_bytes
            for victim in self._size_victims(_EVICT_CHUNK):
                if excess <= 0:
                    break
                chosen.append(victim)
                excess -= victim.size
            if not chosen:
                break  # nothing we can read is evictable (a failing disk): over the bound until it recovers
            self._drop(chosen)

    def _reserve(self, size: int) -> None:
        """Evict as the size bound would, leaving `size` bytes free under it."""
        bound = self.max_bytes
        self.max_bytes = max(0, bound - size)
        try:
            self._enforce_bounds()
        finally:
            self.max_bytes = bound

    def _size_victims(self, n: int) -> list[_Victim]:
        found: list[_Victim] = []
        if self._db is not None:
            try:
                # INDEXED BY: walk (priority, seq) in order; a plan over the seq range would sort everything.
                rows = self._db.execute(
                    "SELECT priority, seq, kind, size FROM entries INDEXED BY entries_victims WHERE seq > ? "
                    "AND kind != ? ORDER BY priority, seq LIMIT ?",
                    (self.floor, LOSS, n + len(self._doomed))).fetchall()
                found = [_Victim(*r) for r in rows if r[1] not in self._doomed][:n]
            except sqlite3.Error as exc:
                self._storage_error("read", exc)
        if self._volatile:
            found += heapq.nsmallest(n, (_Victim(r.priority, r.seq, r.kind, len(r.payload))
                                         for r in self._volatile.values() if r.kind != LOSS))
            found.sort()
        return found[:n]

    def _evict_old(self) -> None:
        now = self._now()
        # At most once a minute; a clock that went backwards (NTP step, reboot without RTC) checks at once.
        if self._age_checked <= now < self._age_checked + _AGE_CHECK_S:
            return
        self._age_checked = now
        if not self._synced():
            return  # `now` itself is not trustworthy
        cutoff = now - self.max_age_s
        found: list[_Victim] = []
        if self._db is not None:
            try:
                rows = self._db.execute(
                    "SELECT priority, seq, kind, size FROM entries WHERE created_synced = 1 AND created < ? "
                    "AND seq > ? AND kind != ? ORDER BY created LIMIT ?",
                    (cutoff, self.floor, LOSS, _AGE_CHUNK + len(self._doomed)))
                found = [_Victim(*r) for r in rows if r[1] not in self._doomed][:_AGE_CHUNK]
            except sqlite3.Error as exc:
                self._storage_error("read", exc)
        found += [_Victim(r.priority, r.seq, r.kind, len(r.payload))
                  for r in self._volatile.values() if r.synced and r.created < cutoff and r.kind != LOSS]
        if len(found) >= _AGE_CHUNK:
            self._age_checked = -math.inf  # more to drop: again on the next append
        if found:
            self._drop(found)

    def _drop(self, victims: list[_Victim]) -> None:
        for victim in victims:
            if self._volatile.pop(victim.seq, None) is None:
                self._doomed[victim.seq] = victim.size
            self._rows -= 1
            self._bytes -= victim.size
            kind = victim.kind.partition(":")[0]  # "snapshot:<event id>" counts as "snapshot"
            self._lost[kind] = self._lost.get(kind, 0) + 1
        for first, last in _runs(sorted(v.seq for v in victims)):
            self._loss_ops.append(self._merge_loss(first, last))
        if len(self._loss_ops) > MAX_REPORTED_RANGES:  # the disk has been failing: rewrite them all later
            self._loss_ops, self._loss_rewrite = [], True
        self._dirty = self._lost_dirty = True

    def _merge_loss(self, first: int, last: int) -> tuple[int, int]:
        """Add [first, last] to the lost ranges, merging overlapping and adjacent ones; returns the result."""
        firsts, lasts = self._loss_first, self._loss_last
        end = bisect.bisect_right(firsts, last + 1)  # ranges from here on start after last + 1
        start = end
        while start > 0 and lasts[start - 1] >= first - 1:
            start -= 1
        if start < end:
            first, last = min(first, firsts[start]), max(last, lasts[end - 1])
        firsts[start:end] = [first]
        lasts[start:end] = [last]
        return first, last

    def _flush(self, op: str) -> bool:
        """Bring the database up to the memory state in one transaction; False (counted, logged) on failure."""
        db = self._db
        if db is None:
            self._storage_error(op, "no database (it could not be opened, or it was closed)")
            return False
        try:
            db.execute("BEGIN IMMEDIATE")
            if self._volatile:
                db.executemany(
                    "INSERT OR REPLACE INTO entries (seq, kind, priority, size, created, created_synced, payload) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(r.seq, r.kind, r.priority, len(r.payload), r.created, int(r.synced), r.payload)
                     for r in self._volatile.values()])
            if self._doomed:
                db.executemany("DELETE FROM entries WHERE seq = ?", [(seq,) for seq in self._doomed])
            if self._floor_dirty:
                db.execute("DELETE FROM entries WHERE seq <= ?", (self.floor,))
            db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                           [("id", self.id), ("last_seq", str(self.last_seq)), ("floor", str(self.floor))])
            if self._loss_rewrite:
                db.execute("DELETE FROM losses")
                db.executemany("INSERT INTO losses (first, last) VALUES (?, ?)",
                               zip(self._loss_first, self._loss_last, strict=True))
            for first, last in self._loss_ops:  # each merged range covers every range it absorbed
                db.execute("DELETE FROM losses WHERE first BETWEEN ? AND ?", (first, last))
                db.execute("INSERT INTO losses (first, last) VALUES (?, ?)", (first, last))
            if self._lost_dirty:
                db.execute("DELETE FROM lost_rows")
                db.executemany("INSERT INTO lost_rows (kind, rows) VALUES (?, ?)", self._lost.items())
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                if db.in_transaction:
                    db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._storage_error(op, exc)
            return False
        if self._failing:
            log.warning("event=journal_write_ok file=%s op=%s rows_from_memory=%d errors=%d", self.path, op,
                        len(self._volatile), self.write_errors)
            self._failing = False
        self._volatile.clear()
        self._doomed.clear()
        self._loss_ops.clear()
        self._dirty = self._floor_dirty = self._lost_dirty = self._loss_rewrite = False
        if self._stale_totals:
            try:
                self._rows, self._bytes = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE seq > ?", (self.floor,)).fetchone()
                self._stale_totals = False
            except sqlite3.Error as exc:
                self._storage_error("read", exc)
        return True

    def _storage_error(self, op: str, exc: Exception | str) -> None:
        self.write_errors += 1
        if not self._failing and op not in ("read", "open"):
            # From now on seqs are issued from memory: if the agent restarts before the disk recovers, the
            # file's older `last_seq` would hand them out again. A new id makes the server count those
            # numbers apart (a new stream), so its acks for these rows can never delete different ones.
            self.id = secrets.token_hex(8)
        self._failing = True
        mono = time.monotonic()
        if mono - self._logged_at >= _LOG_EVERY_S:  # a dead card fails every write: say so once a minute
            self._logged_at = mono
            log.error("event=journal_write_error file=%s op=%s errors=%d error=%r", self.path, op,
                      self.write_errors, str(exc))


def _subtract(ranges: list[tuple[int, int]], told: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted inclusive ranges minus sorted inclusive ranges: [(1, 9)] - [(3, 4)] -> [(1, 2), (5, 9)]."""
    left: list[tuple[int, int]] = []
    for first, last in ranges:
        for a, b in told:
            if b < first or a > last:
                continue
            if a > first:
                left.append((first, a - 1))
            first = b + 1
            if first > last:
                break
        if first <= last:
            left.append((first, last))
    return left


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    """Sorted seqs as runs of consecutive numbers: [1, 2, 3, 7] -> [(1, 3), (7, 7)]."""
    runs: list[tuple[int, int]] = []
    for seq in seqs:
        if runs and runs[-1][1] == seq - 1:
            runs[-1] = (runs[-1][0], seq)
        else:
            runs.append((seq, seq))
    return runs


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
