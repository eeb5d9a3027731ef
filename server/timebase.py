"""When did it really happen? Event times from a device whose wall clock may be wrong.

A Pi has no real-time clock: until NTP syncs, its wall clock may say 1970 or last week. Its monotonic clock
(`mono`, seconds since boot) is trustworthy within one boot. For each (device, boot) the server keeps the
latest moment the boot can have started: min(received - mono) over the boot's messages. Transit delay
is never negative, so the true start is at or before this bound, the bound only improves, and one message
that travelled live pins it to within the network delay. An event's time is then `boot start + mono`:
never in the future of its receipt, never 1970.

A bound is *confirmed* once two messages sent at least CONFIRM_SPAN apart agree on it: messages replayed
in a burst never agree (sent far apart, received together), live heartbeats always do. Clock skew is only
judged against a confirmed bound, so a replay after an outage is never mistaken for a wrong clock.
Pure functions: no clock, no database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

AGREE = timedelta(seconds=2)  # two samples within this of each other confirm the boot's start...
CONFIRM_SPAN = 5.0  # ...if they were sent at least this many seconds apart (else a burst could agree)
MAX_AHEAD = timedelta(minutes=2)  # a synced clock further ahead of our receipt than this is not believed
EARLIEST = datetime(2025, 1, 1, tzinfo=UTC)  # before this software existed: a clock reading this early is wrong


@dataclass(frozen=True)
class BootClock:
    start: datetime  # latest possible wall time (server clock) of this boot's mono = 0
    confirmed: bool = False
    mono: float = 0.0  # mono of the message that gave `start`


def observe(boot: BootClock | None, mono: float, received: datetime) -> BootClock:
    """Fold one message's (mono, receive time) into what we know of its boot."""
    candidate = received - timedelta(seconds=mono)
    if boot is None:
        return BootClock(start=candidate, mono=mono)
    agrees = abs(candidate - boot.start) <= AGREE
    if agrees and abs(mono - boot.mono) >= CONFIRM_SPAN:
        return BootClock(start=min(candidate, boot.start), confirmed=True, mono=mono)
    if candidate < boot.start:
        # A faster message: a better bound. It keeps a confirmation it agrees with, else starts over.
        return BootClock(start=candidate, confirmed=boot.confirmed and agrees, mono=mono)
    return boot  # this one waited longer somewhere: it says nothing new


def clock_skew(ts: datetime, mono: float, boot: BootClock) -> timedelta | None:
    """How far the device's wall clock is from ours; None until the boot's start is confirmed."""
    if not boot.confirmed:
        return None
    return ts - (boot.start + timedelta(seconds=mono))


def event_time(ts: datetime, synced: bool, mono: float, boot: BootClock, received: datetime,
               max_skew: timedelta) -> tuple[datetime, str]:
    """The time to record for an event, and where it came from.

    - `device`: the Pi's clock was NTP-synced and agrees with ours (or cannot be checked yet and is not in
      the future);
    - `estimated`: re-based from `mono` on a confirmed boot start: accurate to the network delay;
    - `approximate`: re-based on an unconfirmed bound (only replayed messages of that boot were seen): it
      may be later than the truth by up to the outage, never earlier, never after receipt.
    """
    rebased = max(min(boot.start + timedelta(seconds=mono), received), min(EARLIEST, received))
    skew = clock_skew(ts, mono, boot)
    if synced and EARLIEST <= ts <= received + MAX_AHEAD and (skew is None or abs(skew) <= max_skew):
        return ts, "device"
    return rebased, "estimated" if boot.confirmed else "approximate"
