"""The forwarder against a real journal and the server's own seq accounting (server/streams.py).

The link is the `publish` callable the uplink passes in; here it hands each payload to the server's pure
`receive`, whose contiguous seq comes back as the ack, as the real server does after its commit.
"""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime

from edge.forwarder import Forwarder
from edge.journal import HIGH, LOW, Journal
from protocol import Ack
from server.streams import receive
from tests.helpers import wait_for

NOW = datetime(2026, 11, 26, tzinfo=UTC)


class ServerSide:
    """Stores what arrives (by seq) and acknowledges the contiguous part, like server/ingest.py."""

    def __init__(self) -> None:
        self.stream = None
        self.doors: dict[int, str] = {}
        self.sent = 0
        self.forwarder: Forwarder | None = None
        self._lock = threading.Lock()

    def publish(self, kind: str, payload: bytes) -> bool:
        body = json.loads(payload)
        with self._lock:
            self.sent += 1
            self.stream = receive(self.stream, body["journal"], body["seq"], body["seq"], body["floor"], NOW)
            for first, last in body.get("data", {}).get("seq_ranges", []):  # a loss report closes its seqs
                self.stream = receive(self.stream, body["journal"], first, last, None, NOW)
            if body.get("sensor") == "front":
                self.doors[body["seq"]] = body["state"]
            upto = self.stream.contig
        assert self.forwarder is not None
        self.forwarder.acked(Ack(upto=upto, journal=body["journal"]))
        return True


def message(journal: Journal, seq: int, **fields) -> bytes:
    return json.dumps({"seq": seq, "journal": journal.id, "floor": journal.floor, **fields}).encode()


def test_a_backlog_with_losses_far_beyond_the_window_drains_completely(tmp_path):
    """Telemetry evicted from the middle of a long backlog: the server cannot acknowledge past the first
    lost seq until it has the loss report, so the report must overtake the backlog (it is the newest row)."""
    journal = Journal(tmp_path / "journal.db", max_bytes=60_000)
    doors = {}
    for i in range(3000):
        if i % 10 == 0:
            state = "open" if i % 20 == 0 else "closed"
            doors[journal.append("event", HIGH, lambda s, st=state: message(journal, s, sensor="front",
                                                                              state=st))] = state
        else:
            journal.append("telemetry", LOW, lambda s: message(journal, s, metrics={"x": 1.0}, pad="p" * 60))
    more = [True]

    def report(seq: int, summary: dict) -> bytes:
        more[0] = summary["more"]
        return message(journal, seq, kind="system", data=summary)

    while more[0] and journal.report_losses(report):
        pass
    assert journal.unacked_reports(), "the bound was not hit: the test would prove nothing"
    server = ServerSide()
    connected = threading.Event()
    connected.set()
    forwarder = Forwarder(journal, server.publish, connected, window=100, resend_after_s=5)
    server.forwarder = forwarder
    forwarder.start()
    try:
        wait_for(lambda: journal.backlog()[0] == 0, timeout=30, what="journal drained")
    finally:
        forwarder.stop()
    assert server.doors == doors  # every door event, none lost
    assert server.stream.contig == journal.last_seq and server.stream.pending == ()


def test_without_acks_the_resend_wait_doubles(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    for _ in range(3):
        journal.append("event", HIGH, lambda s: message(journal, s, sensor="front", state="open"))
    clock = {"t": 0.0}
    sent: list[int] = []
    connected = threading.Event()
    connected.set()
    forwarder = Forwarder(journal, lambda kind, payload: sent.append(json.loads(payload)["seq"]) or True,
                          connected, resend_after_s=30, mono=lambda: clock["t"])
    forwarder._wait = lambda timeout: None  # the clock is ours: idle steps must not sleep for real
    forwarder._step()  # sends 1..3
    assert sent == [1, 2, 3]
    waits = []
    for _ in range(4):
        last = clock["t"]
        while len(sent) % 3 == 0 and forwarder.resends == len(waits):
            clock["t"] += 1
            forwarder._step()
        waits.append(clock["t"] - last)
        forwarder._step()  # the resend itself
    assert [round(w, -1) for w in waits] == [30, 60, 120, 240]


def test_acks_for_another_journal_or_beyond_what_was_issued_are_not_trusted(tmp_path):
    journal = Journal(tmp_path / "journal.db")
    for _ in range(3):
        journal.append("event", HIGH, lambda s: message(journal, s, sensor="front", state="open"))
    forwarder = Forwarder(journal, lambda kind, payload: True, threading.Event())
    forwarder.acked(Ack(upto=3, journal=None))  # a server that does not know our journal
    forwarder.acked(Ack(upto=3, journal="someone-else"))
    forwarder.acked(Ack(upto=5, journal=journal.id))  # seqs we never made
    forwarder._apply_ack()
    assert journal.floor == 0
    forwarder.acked(Ack(upto=2, journal=journal.id))  # and a real one still counts afterwards
    forwarder._apply_ack()
    assert journal.floor == 2
