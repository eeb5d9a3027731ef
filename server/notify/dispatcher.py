"""The dispatcher: sends what the outbox holds, retrying with exponential backoff, never dropping a row.

Each channel is a lane: its rows go out one at a time in due order, while different channels send at the
same moment, so a robot that hangs until its timeout delays only its own messages.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from server.notify import channels, templates
from server.notify.channels import DeliveryError
from server.notify.config import ChannelSettings, NotifySettings
from server.notify.outbox import Outbox

log = logging.getLogger("venuewatch.server.notify")

MAX_IDLE_S = 5.0  # look at the outbox at least this often: rows enqueued by other processes get no wake()
ROBOT_PER_MINUTE = 20  # DingTalk blocks a robot for 10 minutes past this; WeCom refuses (45009)
Sender = Callable[[ChannelSettings, dict[str, Any], str], None]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Dispatcher:
    def __init__(self, engine: Engine, settings: NotifySettings, now: Callable[[], datetime] = _utcnow,
                 send: Sender = channels.send, batch: int = 50, workers: int = 8) -> None:
        self.outbox = Outbox(engine, now, settings.lease_s)
        self._settings = settings
        self._now = now
        self._send = send
        self._batch = batch
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="notify-send")
        self._lock = threading.Lock()
        self._busy: set[str] = set()  # channels with a lane running
        self._recent: dict[str, deque[datetime]] = defaultdict(deque)  # robot sends in the last minute
        self._wake = threading.Event()
        self._handed: list[int] = []  # rows stored pre-claimed for us (hand_over), to send without a claim
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Dispatcher:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        running = bool(self._thread and self._thread.is_alive())
        return f"<Dispatcher running={running} busy={sorted(self._busy)} channels={len(self._settings.channels)}>"

    # --- control --------------------------------------------------------------------------------------

    def start(self) -> None:
        if self._stopping.is_set():
            raise RuntimeError("this dispatcher was stopped; make a new one")
        if self._thread and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._loop, name="notify-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now: call after an enqueue has committed."""
        self._wake.set()

    def hand_over(self, ids: list[int]) -> None:
        """Send these rows, enqueued with claim=True by this process, as soon as possible.

        The claim was part of the insert, so the dispatcher only reads them: under SQLite a claim is a write
        and would wait behind an ingest transaction in progress, which is most of the alert-to-phone time.
        """
        with self._lock:
            self._handed.extend(ids)
        self._wake.set()

    def stop(self) -> None:
        """Stop for good: sends in progress finish, claimed rows not yet tried are released."""
        self._stopping.set()
        self._wake.set()
        if self._thread:
            self._thread.join()
            self._thread = None
        self._pool.shutdown(wait=True)

    def run_once(self) -> int:
        """Claim the due rows, send them and wait for the lanes to finish. Returns how many were delivered."""
        return sum(future.result() for future in self._dispatch())

    # --- work -----------------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                self._dispatch()
                timeout = self._idle_timeout()
            except Exception:  # the database may be away for a moment: keep the thread, try again soon
                log.exception("event=notify_loop_error")
                timeout = MAX_IDLE_S
            self._wake.wait(timeout)

    def _idle_timeout(self) -> float:
        with self._lock:
            busy = set(self._busy)  # a running lane wakes us when it ends
        due = self.outbox.next_due(skip_channels=busy)
        if due is None:
            return MAX_IDLE_S
        return min(MAX_IDLE_S, max(0.0, (due - self._now()).total_seconds()))

    def _dispatch(self) -> list[Future[int]]:
        with self._lock:
            busy = set(self._busy)
            handed, self._handed = self._handed, []
        # Rows handed over first, and their lanes started before we claim anything: a claim is a write and
        # may wait behind another writer, which must not delay a message that is ready to go.
        handed_groups: dict[str, list[Any]] = defaultdict(list)
        later = []
        for row in self.outbox.rows(handed) if handed else []:
            if row.channel in busy:
                later.append(row.id)  # that channel's lane is running; its turn comes when it ends
            else:
                handed_groups[row.channel].append(row)
        futures = self._start_lanes(handed_groups, later)
        with self._lock:
            busy = set(self._busy)
        groups: dict[str, list[Any]] = defaultdict(list)
        for row in self.outbox.claim_due(self._batch, skip_channels=busy):
            groups[row.channel].append(row)
        return futures + self._start_lanes(groups, [])

    def _start_lanes(self, groups: dict[str, list[Any]], later: list[int]) -> list[Future[int]]:
        with self._lock:
            self._busy.update(groups)
            self._handed.extend(later)
        return [self._pool.submit(self._lane, name, rows) for name, rows in groups.items()]

    def _lane(self, name: str, rows: list[Any]) -> int:
        try:
            return self._send_channel(name, rows)
        except Exception:
            # Most likely the database: rows not marked stay claimed and go out again once the lease ends.
            log.exception("event=notify_lane_error channel=%s", name)
            raise
        finally:
            with self._lock:
                self._busy.discard(name)
            self._wake.set()  # its channel may have more rows due

    def _send_channel(self, name: str, rows: list[Any]) -> int:
        channel = self._settings.channel(name)
        if channel is None:
            for row in rows:
                self._failed(row, f"channel {name!r} is not configured (add it to notify.channels; the message "
                             f"is kept until then)", retryable=False)
            return 0
        delivered = 0
        for i, row in enumerate(rows):
            now = self._now()
            if self._stopping.is_set() or now + timedelta(seconds=channel.timeout_s) > row.claimed_until:
                # Past the lease another dispatcher may take the row: hand it back rather than risk two sends.
                self._release(rows[i:])
                break
            if (free_at := self._robot_budget(channel, now)) is not None:
                self._release(rows[i:], free_at)
                break
            try:
                self._send(channel, self._ready(row.message, channel), row.recipient)
            except DeliveryError as exc:
                retry_at = self._failed(row, str(exc), exc.retryable)
                if exc.retryable:
                    # Down or throttling: the rest of this lane waits with it instead of hammering it.
                    self._release(rows[i + 1:], retry_at)
                    break
                continue
            except Exception as exc:  # a bug in a sender must not lose the row or stop the lane
                log.exception("event=notify_error channel=%s id=%s", name, row.id)
                self._failed(row, f"unexpected {type(exc).__name__}: {exc}", retryable=True)
                continue
            self.outbox.mark_sent(row.id)
            delivered += 1
            log.info("event=notify_sent channel=%s id=%s alert=%s attempts=%s", name, row.id, row.alert_id,
                     row.attempts + 1)
        return delivered

    def _failed(self, row: Any, error: str, retryable: bool) -> datetime:
        s = self._settings
        # The exponent is capped: after a week-long outage 2**attempts would overflow a float.
        delay = min(s.retry_initial_s * 2 ** min(row.attempts, 30), s.retry_max_s) if retryable else s.retry_max_s
        retry_at = self._now() + timedelta(seconds=delay)
        self.outbox.mark_failed(row.id, error, retry_at)
        log.warning("event=notify_failed channel=%s id=%s alert=%s attempts=%s retry_in_s=%g error=%r",
                    row.channel, row.id, row.alert_id, row.attempts + 1, delay, error)
        return retry_at

    def _release(self, rows: list[Any], due_at: datetime | None = None) -> None:
        for row in rows:
            self.outbox.release(row.id, due_at)

    def _robot_budget(self, channel: ChannelSettings, now: datetime) -> datetime | None:
        """None if this robot may send now; else when it may (counts this process's sends only)."""
        if channel.type not in ("dingtalk", "wecom"):
            return None
        recent = self._recent[channel.name]
        while recent and recent[0] <= now - timedelta(minutes=1):
            recent.popleft()
        if len(recent) >= ROBOT_PER_MINUTE:
            return recent[0] + timedelta(minutes=1)
        recent.append(now)
        return None

    def _ready(self, message: dict[str, Any], channel: ChannelSettings) -> dict[str, Any]:
        """A stored message with its text, or one stored as {"alert","reason"[,"lang"]} rendered now."""
        if "title" in message and "text" in message:
            return message
        return templates.message(message["alert"], message["reason"], message.get("lang", channel.lang),
                                 self._settings.console_url, now=self._now())
