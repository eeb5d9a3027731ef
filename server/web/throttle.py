"""Login throttling: after repeated failures a name (or an address) must wait before trying again.

In memory, per server process; a restart forgets. Pure apart from the injected clock. Names and addresses
use separate throttles: a duty room behind one NAT address shares it, so it gets a higher limit.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable


class LoginThrottle:
    def __init__(self, max_failures: int = 5, window_s: float = 900, lockout_s: float = 900,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_failures
        self._window = window_s
        self._lockout = lockout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._locked_until: dict[str, float] = {}

    def retry_after(self, *keys: str) -> float:
        """Seconds until any of these keys (user name, client address) may try again; 0 if now."""
        now = self._clock()
        with self._lock:
            return max([0.0, *(self._locked_until.get(k, now) - now for k in keys)])

    def failed(self, *keys: str) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                recent = self._failures[key]
                recent.append(now)
                while recent and recent[0] < now - self._window:
                    recent.popleft()
                if len(recent) >= self._max:
                    self._locked_until[key] = now + self._lockout
                    recent.clear()

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
                self._locked_until.pop(key, None)
