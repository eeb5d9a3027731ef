"""The inventory file, re-read while the server runs.

The file is changed by the console's admin pages, by `venuewatch provision device` and by an operator's
editor. Every server process (each role) watches it and takes a new version at once, without a restart:
a device added from the console can publish a minute later and be heard. A version the server would
refuse (a typo in an editor) is logged and ignored; the previous inventory stays in force.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, insert, select, update

from protocol.configfile import ConfigError
from server.inventory import Inventory, load_inventory
from server.store import devices, startup_lock, venues

log = logging.getLogger("venuewatch.inventory")


def sync_inventory(engine: Engine, inventory: Inventory) -> None:
    """Mirror the inventory file into SQL so reports and joins see the same tree."""
    with engine.begin() as conn:
        known_venues = {r.id for r in conn.execute(select(venues.c.id))}
        for v in inventory.venues.values():
            row = {"name": v.name, "village_id": v.village_id, "village_name": v.village_name,
                   "township_id": v.township_id, "township_name": v.township_name, "hours": v.hours}
            if v.id in known_venues:
                conn.execute(update(venues).where(venues.c.id == v.id).values(**row))
            else:
                conn.execute(insert(venues).values(id=v.id, **row))
        known_devices = {r.id for r in conn.execute(select(devices.c.id))}
        for device, venue_id in inventory.device_venue.items():
            if device in known_devices:
                conn.execute(update(devices).where(devices.c.id == device).values(venue_id=venue_id))
            else:
                conn.execute(insert(devices).values(id=device, venue_id=venue_id, status="unknown"))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    # The inode changes on every atomic replace, even within one mtime tick.
    return st.st_mtime_ns, st.st_size, st.st_ino


class InventoryWatcher:
    """Reloads `inventory` in place when its file changes; `check()` may also be called right after a write."""

    def __init__(self, path: Path, inventory: Inventory, engine: Engine, data_dir: Path, *,
                 interval_s: float = 2.0, on_reload: Callable[[Inventory], None] | None = None) -> None:
        self.path = Path(path)
        self.inventory = inventory
        self._engine = engine
        self._data_dir = data_dir
        self._interval_s = interval_s
        self._on_reload = on_reload
        self._seen = _stamp(self.path)
        self._lock = threading.Lock()
        self.reloads = 0
        self.refused = 0

    def check(self) -> bool:
        """Reload if the file changed since last seen; True when a new version was taken."""
        with self._lock:
            stamp = _stamp(self.path)
            if stamp is None or stamp == self._seen:
                return False
            self._seen = stamp
            try:
                new = load_inventory(self.path)
            except ConfigError as exc:
                self.refused += 1
                log.error("event=inventory_refused file=%s error=%s hint=fix the file; the previous inventory stays "
                          "in force until then", self.path, exc)
                return False
            # Several processes reload at once: one writes the SQL mirror at a time (as at start).
            with startup_lock(self._engine, self._data_dir):
                sync_inventory(self._engine, new)
            self.inventory.replace(new)
            self.reloads += 1
            log.info("event=inventory_reloaded file=%s venues=%d devices=%d", self.path, len(new.venues),
                     len(new.device_venue))
        if self._on_reload:
            self._on_reload(self.inventory)
        return True

    def run(self, stop: threading.Event) -> None:
        while not stop.wait(self._interval_s):
            try:
                self.check()
            except Exception:  # a database hiccup must not end the watching for good
                log.exception("event=inventory_reload_failed file=%s", self.path)
                self._seen = None  # try again next time


def writable(path: Path) -> bool:
    """Can this process replace the file (atomically: a new file in its folder, renamed over it)?"""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
