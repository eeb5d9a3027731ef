"""The arming book keeps the rules' answer per venue and minute: an arming change must still count at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from server.arming import CACHE_S
from server.store import arming
from tests.helpers import ALWAYS_CLOSED, ALWAYS_OPEN
from tests.server.duty_fixtures import NOW, Clock, event, start_duty_server, stop_duty_server

VENUES = [
    ("venue-a", "t-one", ALWAYS_CLOSED, ["pi-a"]),
    ("venue-b", "t-one", ALWAYS_OPEN, ["pi-b"]),
    ("venue-c", "t-two", ALWAYS_CLOSED, ["pi-c"]),  # the fixture's users need both townships
]


@pytest.fixture
def duty(tmp_path):
    started = start_duty_server(tmp_path, VENUES, Clock(NOW))
    yield started
    stop_duty_server(started)


def opening_alerts(duty, device: str, seq: int, offset_s: float = 0) -> int:
    """A door of `device` opens `offset_s` after the clock's now; how many alerts are open for its venue?"""
    at = duty.clock() + timedelta(seconds=offset_s)
    assert duty.server.ingest.handle(f"vw/{device}/event", event(device, at, seq=seq)) == "stored"
    venue = "venue-a" if device == "pi-a" else "venue-b"
    return duty.server.book.count(status="open", venue=venue)


def test_arming_an_open_venue_counts_for_the_next_event_in_the_same_minute(duty):
    assert opening_alerts(duty, "pi-b", 1) == 0  # open: "not armed" is now known for this minute
    duty.server.arming.set("venue-b", "armed", 30, "duty-one", "维修闭馆")
    assert opening_alerts(duty, "pi-b", 2) == 1  # same instant, same minute: armed


def test_disarming_and_cancelling_count_at_once(duty):
    assert opening_alerts(duty, "pi-a", 1) == 1  # closed: armed
    duty.server.arming.set("venue-a", "disarmed", 30, "duty-one", "保洁")
    assert opening_alerts(duty, "pi-a", 2) == 1  # no second alert: disarmed
    duty.server.arming.cancel("venue-a", "duty-one")
    assert opening_alerts(duty, "pi-a", 3) == 2  # back to the calendar: armed again


def test_a_minute_with_an_override_edge_inside_is_decided_to_the_second(duty):
    assert opening_alerts(duty, "pi-b", 1, offset_s=1) == 0
    duty.clock.advance(seconds=30)
    duty.server.arming.set("venue-b", "armed", 1, "duty-one", "")  # from :30 of this minute to :30 of the next
    assert opening_alerts(duty, "pi-b", 2, offset_s=-10) == 0  # before the override began, late
    assert opening_alerts(duty, "pi-b", 3, offset_s=10) == 1
    duty.clock.advance(seconds=60)  # the override has ended, in the middle of the next minute
    assert opening_alerts(duty, "pi-b", 4, offset_s=-20) == 2  # still inside it
    assert opening_alerts(duty, "pi-b", 5, offset_s=5) == 2  # after it: open again


def test_an_override_stored_by_another_process_is_seen_when_the_overrides_are_read_again(duty):
    assert opening_alerts(duty, "pi-b", 1) == 0
    with duty.server.engine.begin() as conn:  # the web process of a split server, behind this one's back
        conn.execute(insert(arming).values(venue_id="venue-b", mode="armed", starts_at=NOW - timedelta(minutes=5),
                                           ends_at=NOW + timedelta(minutes=30), by="duty-one", note=""))
    duty.clock.advance(seconds=CACHE_S + 0.5)  # the same minute still: only the reload can tell
    assert opening_alerts(duty, "pi-b", 2) == 1
