"""The last door states the agent reported, kept on disk so a change made while it was down is not missed.

An intruder who cuts the power, opens the door and leaves it open must still raise 非开放时段开门 when the
Pi boots again: at start the agent compares each door with what it last reported.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("venuewatch.edge.doormemory")


class DoorMemory:
    def __init__(self, path: Path, states: tuple[str, ...] = ("open", "closed")) -> None:
        self._path = path
        self._allowed = states
        self._lock = threading.Lock()
        self._states = self._load()
        self.write_errors = 0

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A torn write on a worn SD card: start fresh rather than refuse to run; we lose one comparison.
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and v in self._allowed}

    def last(self, door: str) -> str | None:
        return self._states.get(door)

    def remember(self, door: str, state: str) -> None:
        """Update memory; a failed disk write is logged and counted, never raised (the event must go out)."""
        with self._lock:
            self._states[door] = state
            tmp = self._path.with_suffix(".tmp")
            try:
                with open(tmp, "w") as fh:
                    json.dump(self._states, fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(tmp, self._path)
            except OSError as exc:
                self.write_errors += 1
                log.error("event=storage_error file=%s error=%r", self._path, exc.strerror or str(exc))
