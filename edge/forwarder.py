"""Sends the journal to the broker in seq order and deletes what the server has acknowledged.

The journal, not paho's in-memory queue, is the source of truth: the forwarder reads unacknowledged
entries after the last one it sent, publishes them at QoS 1, and keeps at most `window` seqs in flight
beyond the server's last ack (so a long backlog neither floods the broker nor fills the agent's memory).
Everything is resent from the last ack when the link comes back, or when no ack has come for
`resend_after_s` while connected (a message the broker lost, or a server that is down: the wait then
doubles up to RESEND_MAX_S, so a county of agents does not flood the broker's queue for a stopped
server); the server stores each event once. Loss reports go ahead of the backlog (see
Journal.unacked_reports).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from edge.journal import LOSS, Entry, Journal
from protocol import Ack

log = logging.getLogger("venuewatch.edge.forwarder")

RESEND_MAX_S = 900.0


def topic_kind(entry: Entry) -> str:
    """Where an entry is published: `kind`, or `kind/sub` for a snapshot (`snapshot/<event id>-<seq>`)."""
    if entry.kind == LOSS:
        return "event"
    kind, _, event_id = entry.kind.partition(":")
    return f"{kind}/{event_id}-{entry.seq}" if event_id else kind


class Forwarder:
    def __init__(self, journal: Journal, publish: Callable[[str, bytes], bool], connected: threading.Event,
                 window: int = 1000, resend_after_s: float = 30.0,
                 mono: Callable[[], float] = time.monotonic) -> None:
        self._journal = journal
        self._publish = publish
        self._connected = connected
        self._window = window
        self._resend_after = resend_after_s
        self._mono = mono
        self._wake = threading.Condition()
        self._acked_upto = journal.floor  # newest ack received (applied to the journal by our thread)
        self._cursor = journal.floor  # last seq published on this connection
        self._progress_at = mono()  # last time the ack moved (or we (re)started sending)
        self._rewind = True
        self._reports_due = True  # send unacked loss reports before the backlog
        self._timeouts = 0  # consecutive ack timeouts: the resend wait doubles with each
        self._dirty = False  # woken while busy: do not sleep on the next wait
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.resends = 0
        self.published: dict[str, int] = {"event": 0, "telemetry": 0, "snapshot": 0}  # entries sent, by topic kind
        self.last_ack_at: float | None = None  # mono time of the latest ack for our journal

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="forwarder", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake()
        if self._thread:
            self._thread.join(timeout=5)

    def wake(self) -> None:
        """Something new is in the journal (or the link changed)."""
        with self._wake:
            self._dirty = True
            self._wake.notify()

    def link_up(self) -> None:
        """A new connection: whatever was in flight on the old one may be gone, so send again from the ack."""
        with self._wake:
            self._rewind = self._dirty = self._reports_due = True
            self._timeouts = 0  # a new connection is a new situation: wait the normal time again
            self._wake.notify()

    def report_made(self) -> None:
        """A new loss report is in the journal: send it ahead of whatever else is waiting."""
        with self._wake:
            self._reports_due = self._dirty = True
            self._wake.notify()

    def acked(self, ack: Ack) -> None:
        """Called on paho's thread: record only; the disk work happens on the forwarder's own thread."""
        if ack.journal != self._journal.id:
            # Another journal's (an older card, a server that does not know ours): never trusted.
            log.warning("event=foreign_ack journal=%s ours=%s", ack.journal, self._journal.id)
            return
        if ack.upto > self._journal.last_seq:
            log.warning("event=ack_beyond_last upto=%d last_seq=%d", ack.upto, self._journal.last_seq)
            return
        self.last_ack_at = self._mono()
        with self._wake:
            if ack.upto > self._acked_upto:
                self._acked_upto = ack.upto
                self._dirty = True
                self._wake.notify()

    def last_ack_age(self) -> float | None:
        """Seconds since the latest acknowledgement for our journal arrived; None if none has since the start."""
        return None if self.last_ack_at is None else max(0.0, self._mono() - self.last_ack_at)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except Exception:  # the forwarder must outlive any one failure (a bad row, a paho error)
                log.exception("event=forwarder_error")
                self._stop.wait(1)

    def _step(self) -> None:
        self._apply_ack()
        if not self._connected.is_set():
            self._wait(1.0)
            return
        floor = self._journal.floor
        with self._wake:
            if self._rewind or self._cursor < floor:
                if self._rewind and self._cursor > floor:
                    log.info("event=resend from_seq=%d to_seq=%d", floor + 1, self._cursor)
                self._cursor, self._rewind, self._progress_at = floor, False, self._mono()
            reports_due, self._reports_due = self._reports_due, False
        if reports_due and not self._send(e for e in self._journal.unacked_reports() if e.seq > self._cursor):
            return
        room = self._window - (self._cursor - floor)
        entries = self._journal.pending(self._cursor, min(room, 500)) if room > 0 else []
        if not self._send(entries, advance=True):
            return
        if entries:
            return
        if self._cursor > floor and self._mono() - self._progress_at > self._resend_wait():
            # Sent, connected, and no ack for a long time: lost on the way, or the server is down. Go back.
            self.resends += 1
            self._timeouts += 1
            log.warning("event=ack_timeout floor=%d cursor=%d next_wait_s=%.0f; resending", floor, self._cursor,
                        self._resend_wait())
            with self._wake:
                self._rewind = self._reports_due = True
            return
        self._wait(1.0)

    def _send(self, entries: Iterable[Entry], advance: bool = False) -> bool:
        for entry in entries:
            kind = topic_kind(entry)
            if not self._connected.is_set() or not self._publish(kind, entry.payload):
                self.link_up()  # the link dropped mid-way: start over from the ack once it is back
                return False
            kind = kind.partition("/")[0]
            self.published[kind] = self.published.get(kind, 0) + 1
            if advance:
                self._cursor = entry.seq
        return True

    def _resend_wait(self) -> float:
        return min(self._resend_after * 2 ** self._timeouts, max(RESEND_MAX_S, self._resend_after))

    def _apply_ack(self) -> None:
        upto = self._acked_upto
        if upto > self._journal.floor:
            self._journal.ack(upto)
            self._progress_at = self._mono()
            self._timeouts = 0

    def _wait(self, timeout: float) -> None:
        with self._wake:
            if not self._dirty:
                self._wake.wait(timeout)
            self._dirty = False
