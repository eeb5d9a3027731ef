"""In-process fan-out of live updates to console streams (SSE), with a short replay buffer.

Each message carries an increasing id; a browser that reconnects sends Last-Event-ID and receives what it
missed, or `resync` when the gap is older than the buffer.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Update:
    id: int
    type: str  # alert | state | resync
    venue_id: str | None
    data: dict[str, Any]


class Subscription:
    def __init__(self, hub: Hub, venues: frozenset[str] | None) -> None:
        self._hub = hub
        self.venues = venues  # None: every venue
        self.queue: queue.Queue[Update] = queue.Queue(maxsize=10_000)
        self.overflowed = False

    def wants(self, update: Update) -> bool:
        return self.venues is None or update.venue_id is None or update.venue_id in self.venues

    def get(self, timeout: float) -> Update | None:
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def close(self) -> None:
        self._hub.unsubscribe(self)


class Hub:
    def __init__(self, replay: int = 2000) -> None:
        self._lock = threading.Lock()
        # Ids start from the clock so a restarted server never reuses ids a browser has already seen.
        self._next_id = int(time.time() * 1000)
        self._recent: deque[Update] = deque(maxlen=replay)
        self._subs: set[Subscription] = set()
        # Split into processes (`--role`), every update is also handed to the other processes: server/livefeed.py.
        self.forward: Callable[[Update], None] | None = None

    def publish(self, type_: str, venue_id: str | None, data: dict[str, Any], *, local: bool = False) -> Update:
        """Hand an update to this process's consoles, and (unless `local`: it came from another process) on."""
        with self._lock:
            update = Update(self._next_id, type_, venue_id, data)
            self._next_id += 1
            self._recent.append(update)
            subs = list(self._subs)
        for sub in subs:
            if not sub.wants(update):
                continue
            try:
                sub.queue.put_nowait(update)
            except queue.Full:
                # A stalled client must not hold memory forever; it is told to reload instead.
                sub.overflowed = True
        if self.forward is not None and not local:
            self.forward(update)
        return update

    def subscribe(self, venues: frozenset[str] | None, last_id: int | None = None) -> Subscription:
        sub = Subscription(self, venues)
        with self._lock:
            self._subs.add(sub)
            if last_id is not None:
                oldest = self._recent[0].id if self._recent else self._next_id
                # Older than our buffer, or from before a restart: the client must reload its lists.
                if last_id + 1 < oldest or last_id >= self._next_id:
                    sub.queue.put_nowait(Update(0, "resync", None, {}))
                for update in self._recent:
                    if update.id > last_id and sub.wants(update):
                        sub.queue.put_nowait(update)
        return sub

    def close(self) -> None:
        """Server shutdown: tell every open stream to end, so no worker thread waits for its keep-alive."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            with contextlib.suppress(queue.Full):
                sub.queue.put_nowait(Update(0, "shutdown", None, {}))

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        with self._lock:
            return len(self._subs)

