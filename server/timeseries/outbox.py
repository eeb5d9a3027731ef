"""The durable outbox to the time-series server, and the thread that drains it.

Ingest stores line protocol in `timeseries_outbox` in the same transaction as the messages it came from, so a
crash loses neither or both. `OutboxWriter` sends the oldest rows in batches through influxdb-client's v2
write API and deletes them only once the server has accepted them. While the server is down it retries with
exponential backoff and jitter (1 s doubling to 60 s by default), and the rows wait: nothing is lost, and
the backlog drains when the server returns. The outbox is bounded: past `max_rows` the oldest rows are
dropped, counted and logged (a county's disk must not fill during a week-long outage of a history store).

Delivery is at least once: a write that timed out after the server stored it is sent again. InfluxDB
overwrites the same point; VictoriaMetrics keeps both samples unless it runs with
`-dedup.minScrapeInterval=1ms` (docs/timeseries.md#victoriametrics).
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, func, insert, select

from protocol.configfile import ConfigError
from server.store import timeseries_outbox

log = logging.getLogger("venuewatch.server.timeseries")

DELETE_CHUNK = 1000  # ids per DELETE ... IN (...): well inside every database's parameter limit
REFUSED_STATUSES = (400, 413, 422)  # the lines themselves are refused: sending them again cannot help


def enqueue(conn: Connection, lines: Sequence[str], now: datetime) -> None:
    """Store lines for the writer, inside the caller's transaction."""
    if lines:
        conn.execute(insert(timeseries_outbox), [{"created_at": now, "line": line} for line in lines])


def backoff_delay(failures: int, initial: float, maximum: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after `failures` failed attempts in a row: doubling from `initial` up to `maximum`, with
    "equal jitter" (half fixed, half random) so a fleet of servers does not retry in step."""
    cap = min(maximum, initial * 2 ** max(failures - 1, 0))
    return cap / 2 + rand() * cap / 2


class WriteFailed(Exception):
    """The write did not succeed (server unreachable, an error status): try again later."""


class WriteRefused(Exception):
    """The time-series server refused the lines (malformed, too large): retrying the same lines cannot help."""


class Sink(Protocol):
    def write(self, lines: list[str]) -> None: ...

    def close(self) -> None: ...


class InfluxSink:
    """influxdb-client's v2 write API, synchronous: `OutboxWriter` does the batching and the retrying, so a
    row leaves the outbox exactly when its write succeeded."""

    def __init__(self, url: str, org: str, bucket: str, token: str | None, timeout_s: float) -> None:
        try:
            from influxdb_client import InfluxDBClient
            from influxdb_client.client.write_api import SYNCHRONOUS
        except ImportError:
            raise ConfigError("timeseries.enabled: the influxdb-client library is not installed "
                              "(pip install 'influxdb-client>=1.40', or install venuewatch with its server extras)"
                              ) from None

        self.url, self._org, self._bucket = url, org, bucket
        # No retries inside the client (its default): a failed write comes back to us at once.
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=int(timeout_s * 1000))
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def __repr__(self) -> str:  # never the token
        return f"<InfluxSink url={self.url} org={self._org} bucket={self._bucket}>"

    def write(self, lines: list[str]) -> None:
        from influxdb_client import WritePrecision
        from influxdb_client.rest import ApiException

        try:
            self._api.write(bucket=self._bucket, org=self._org, record=lines, write_precision=WritePrecision.MS)
        except ApiException as exc:
            detail = f"HTTP {exc.status} {exc.reason}: {str(exc.body or '')[:300]}"
            if exc.status in REFUSED_STATUSES:
                raise WriteRefused(detail) from None
            raise WriteFailed(detail) from None

    def close(self) -> None:
        self._client.close()


def read_token(path: Path | None) -> str | None:
    """The API token from its file (None: the server needs none, as a VictoriaMetrics without -httpAuth)."""
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ConfigError(f"timeseries.token_file: cannot read {path} ({exc.strerror})") from None


class OutboxWriter:
    """Drains `timeseries_outbox` into a `Sink` from a thread of its own. Counters: `counters()`."""

    def __init__(self, engine: Engine, sink: Sink, *, batch_size: int = 5000, flush_interval_s: float = 1.0,
                 max_rows: int = 5_000_000, retry_initial_s: float = 1.0, retry_max_s: float = 60.0,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 rand: Callable[[], float] = random.random) -> None:
        self._engine = engine
        self._locking = engine.dialect.name == "postgresql"
        self.sink = sink
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_rows = max_rows
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._now = now
        self._rand = rand
        self._lock = threading.Lock()
        self._counts: dict[str, Any] = {"written": 0, "batches": 0, "failures": 0, "refused": 0, "dropped": 0,
                                        "pending": 0, "last_error": None, "last_success_at": None}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        running = bool(self._thread and self._thread.is_alive())
        c = self.counters()
        return (f"<OutboxWriter running={running} sink={self.sink!r} pending={c['pending']} written={c['written']} "
                f"failures={c['failures']} dropped={c['dropped']}>")

    def counters(self) -> dict[str, Any]:
        """written, batches (successful writes), failures, refused and dropped (lines), pending (outbox rows when
        last looked: exact above max_rows, else at most that many), last_error, last_success_at."""
        with self._lock:
            return dict(self._counts)

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, n in increments.items():
                self._counts[name] += n

    def _set(self, **values: Any) -> None:
        with self._lock:
            self._counts.update(values)

    # --- control ------------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread and self._thread.is_alive():
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="timeseries-writer", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread; what is still in the outbox stays there for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)
            self._thread = None
        self.sink.close()

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                sent = self.run_once()
            except Exception as exc:
                failures += 1
                delay = backoff_delay(failures, self.retry_initial_s, self.retry_max_s, self._rand)
                self._count(failures=1)
                self._set(last_error=str(exc)[:300])
                log.warning("event=timeseries_write_failed attempt=%d retry_in_s=%.1f pending=%d error=%r",
                            failures, delay, self.counters()["pending"], str(exc)[:300])
                self._stopping.wait(delay)
                continue
            if failures:
                log.info("event=timeseries_write_recovered failed_attempts=%d pending=%d", failures,
                         self.counters()["pending"])
                failures = 0
            if sent < self.batch_size:  # caught up: wait for more lines to batch
                self._wake.wait(self.flush_interval_s)
                self._wake.clear()

    # --- one round ----------------------------------------------------------------------------------------

    def run_once(self) -> int:
        """Enforce the bound, then send one batch; returns the lines sent. Raises when the write failed."""
        self.trim()
        return self.drain_batch()

    def trim(self) -> int:
        """Drop the oldest rows beyond `max_rows`; returns how many (also counted as `dropped`)."""
        c = timeseries_outbox.c
        with self._engine.begin() as conn:
            # The id span bounds the row count from above and costs two index lookups; counting millions of rows
            # on every round would not (ids only grow, and rows leave oldest first, so the span is close).
            low, high = conn.execute(select(func.min(c.id), func.max(c.id))).one()
            count = 0 if low is None else high - low + 1
            if count > self.max_rows:
                count = conn.execute(select(func.count()).select_from(timeseries_outbox)).scalar_one()
            dropped = 0
            if count > self.max_rows:
                cutoff = conn.execute(select(c.id).order_by(c.id.desc()).offset(self.max_rows).limit(1)).scalar_one()
                dropped = conn.execute(delete(timeseries_outbox).where(c.id <= cutoff)).rowcount
        self._count(dropped=dropped)
        self._set(pending=count - dropped)
        if dropped:
            log.warning("event=timeseries_outbox_overflow dropped=%d max_rows=%d (the oldest lines are lost)",
                        dropped, self.max_rows)
        return dropped

    def drain_batch(self) -> int:
        c = timeseries_outbox.c
        query = select(c.id, c.line).order_by(c.id).limit(self.batch_size)
        if self._locking:
            # PostgreSQL, several ingest processes: each writer takes rows no other writer holds, and keeps them
            # locked until it has deleted them.
            with self._engine.begin() as conn:
                rows = conn.execute(query.with_for_update(skip_locked=True)).all()
                done, error = self._send(rows)
                self._delete(conn, done)
        else:
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
            done, error = self._send(rows)
            if done:
                with self._engine.begin() as conn:
                    self._delete(conn, done)
        self._set(pending=max(self.counters()["pending"] - len(done), 0))
        if error is not None:
            raise error
        return len(rows)

    def _delete(self, conn: Connection, ids: list[int]) -> None:
        for i in range(0, len(ids), DELETE_CHUNK):
            conn.execute(delete(timeseries_outbox).where(timeseries_outbox.c.id.in_(ids[i:i + DELETE_CHUNK])))

    def _send(self, rows: Sequence[Any]) -> tuple[list[int], Exception | None]:
        """Write rows; returns the ids that are done (written, or refused and dropped) and the error that
        stopped the rest. A refused batch is split in halves until the refused lines are found: one bad line
        never holds up (or takes down) the good ones around it."""
        if not rows:
            return [], None
        try:
            self.sink.write([r.line for r in rows])
        except WriteRefused as exc:
            if len(rows) == 1:
                self._count(refused=1)
                log.error("event=timeseries_line_refused id=%d error=%r line=%r", rows[0].id, str(exc)[:300],
                          rows[0].line[:300])
                return [rows[0].id], None
            half = len(rows) // 2
            first, error = self._send(rows[:half])
            if error is not None:
                return first, error
            second, error = self._send(rows[half:])
            return first + second, error
        except Exception as exc:
            return [], exc
        self._count(written=len(rows), batches=1)
        self._set(last_success_at=self._now())
        return [r.id for r in rows], None
