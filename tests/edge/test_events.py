from datetime import datetime, timedelta, timezone

from edge.events import EventFactory


class FakeClock:
    """A clock we set by hand: the Pi before NTP sync believes it is 1970."""

    def __init__(self) -> None:
        self.wall = datetime(1970, 1, 1, 8, 0, 5, tzinfo=timezone(timedelta(hours=8)))
        self.monotonic = 12.3456
        self.is_synced = False

    def now(self):
        return self.wall

    def mono(self):
        return self.monotonic

    def boot_id(self):
        return "boot-abc"

    def synced(self):
        return self.is_synced


def test_events_carry_time_fields_and_the_journal_position(tmp_path):
    clock = FakeClock()
    factory = EventFactory("pi-0001", clock)
    first = factory.make("door", "front", "open", seq=1, journal="j1", floor=0)
    clock.monotonic += 2
    clock.is_synced = True
    second = factory.make("door", "front", "closed", seq=2, journal="j1", floor=1)
    assert (first.seq, second.seq, first.journal, second.floor) == (1, 2, "j1", 1)
    assert first.id != second.id and len(first.id) == 26
    assert first.boot == "boot-abc" and first.mono == 12.346 and first.synced is False
    assert second.synced is True and second.mono == 14.346
    assert first.ts == clock.wall and first.device == "pi-0001"


def test_system_clock_stays_synced_once_synced_in_this_boot(monkeypatch):
    import edge.clock as clock_module

    answers = iter([False, True, False, False])
    monkeypatch.setattr(clock_module, "kernel_clock_synced", lambda: next(answers))
    clock = clock_module.SystemClock()
    assert [clock.synced() for _ in range(4)] == [False, True, True, True]


def test_modem_signal_quality_is_read_from_modemmanager_output():
    from edge.health import parse_modem_signal

    sample = ("modem.generic.state                 : connected\n"
              "modem.generic.signal-quality.value  : 67\n"
              "modem.generic.signal-quality.recent : yes\n")
    assert parse_modem_signal(sample) == 67.0
    assert parse_modem_signal("error: couldn't find modem\n") is None
