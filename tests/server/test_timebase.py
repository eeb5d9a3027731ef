"""Event times from a Pi without a real-time clock: never 1970, never in the future, flagged when re-based."""

from datetime import UTC, datetime, timedelta

from server.timebase import BootClock, clock_skew, event_time, observe

NOW = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
SKEW = timedelta(minutes=2)
BOOT_AT = NOW - timedelta(hours=1)  # the Pi booted an hour ago (server's clock)


def live(mono: float, delay: float = 0.05) -> datetime:
    """When a message sent at `mono` reaches us over a link with `delay` seconds of latency."""
    return BOOT_AT + timedelta(seconds=mono + delay)


def confirmed_boot() -> BootClock:
    boot = observe(None, 3000.0, live(3000.0))
    return observe(boot, 3015.0, live(3015.0, delay=0.2))  # the next heartbeat agrees


def test_two_live_heartbeats_confirm_the_boot_start():
    boot = confirmed_boot()
    assert boot.confirmed and abs((boot.start - BOOT_AT).total_seconds()) < 0.1


def test_a_replayed_burst_never_confirms_itself():
    boot = None
    for i in range(100):  # sent 30 s apart over ~50 minutes, all received within a second
        boot = observe(boot, 100.0 + 30 * i, NOW + timedelta(milliseconds=5 * i))
    assert not boot.confirmed


def test_unsynced_1970_clock_is_rebased_on_the_boot_and_flagged():
    boot = confirmed_boot()
    mono = 3400.0
    ts = datetime(1970, 1, 1, 0, 56, 40, tzinfo=UTC)
    when, source = event_time(ts, False, mono, boot, live(mono), SKEW)
    assert source == "estimated"
    assert abs((when - (BOOT_AT + timedelta(seconds=mono))).total_seconds()) < 0.1


def test_a_late_event_keeps_its_real_time():
    boot = confirmed_boot()
    mono = 3100.0
    received = live(mono) + timedelta(hours=3)  # journaled during an outage, sent three hours later
    when, source = event_time(datetime(1970, 1, 1, tzinfo=UTC), False, mono, boot, received, SKEW)
    assert source == "estimated" and abs((when - (BOOT_AT + timedelta(seconds=mono))).total_seconds()) < 0.1


def test_a_synced_clock_that_agrees_is_used_and_one_a_day_ahead_is_not():
    boot = confirmed_boot()
    mono = 3500.0
    true_time = BOOT_AT + timedelta(seconds=mono)
    assert event_time(true_time, True, mono, boot, live(mono), SKEW) == (true_time, "device")
    ahead = true_time + timedelta(days=1)
    when, source = event_time(ahead, True, mono, boot, live(mono), SKEW)
    assert source == "estimated" and when <= live(mono)
    assert clock_skew(ahead, mono, boot) > timedelta(hours=23)


def test_without_a_confirmed_boot_the_time_is_approximate_and_never_after_receipt():
    boot = observe(None, 500.0, NOW)  # one replayed message of an old boot
    when, source = event_time(datetime(1970, 1, 1, tzinfo=UTC), False, 400.0, boot, NOW, SKEW)
    assert source == "approximate" and when <= NOW and when.year == 2026
    assert clock_skew(NOW, 400.0, boot) is None  # no skew judged on an unconfirmed bound


def test_a_synced_clock_reading_before_2025_is_not_believed():
    boot = observe(None, 10.0, NOW)
    when, source = event_time(datetime(1970, 1, 1, tzinfo=UTC), True, 10.0, boot, NOW, SKEW)
    assert source == "approximate" and when == NOW
