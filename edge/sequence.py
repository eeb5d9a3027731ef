"""The per-device event counter. It must never repeat, even across power cuts."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger("venuewatch.edge.sequence")


class SequenceCounter:
    """Persists the last issued `seq` in a small file, written atomically and fsynced before use.

    A seq is returned after it is on disk, so a crash can skip a number but never reuse one. If the disk
    refuses the write (a worn SD card turned read-only, a full disk), the seq is still issued from memory
    and the failure counted: losing a door event would be worse than a seq that may repeat after a
    restart (the server deduplicates by event id, not by seq).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._last = self._load()
        self.write_errors = 0

    @property
    def last(self) -> int:
        return self._last

    def next(self) -> int:
        with self._lock:
            value = self._last + 1
            try:
                self._store(value)
            except OSError as exc:
                self.write_errors += 1
                log.error("event=storage_error file=%s error=%r", self._path, exc.strerror or str(exc))
            self._last = value
            return value

    def _load(self) -> int:
        try:
            text = self._path.read_text().strip()
        except FileNotFoundError:
            return 0
        if not text.isdigit():
            raise ValueError(f"{self._path}: corrupt sequence file ({text[:20]!r}); remove it only if the "
                             "server has been told to expect a restart of the sequence")
        return int(text)

    def _store(self, value: int) -> None:
        tmp = self._path.with_suffix(".tmp")
        with open(tmp, "w") as fh:
            fh.write(f"{value}\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self._path)
        dir_fd = os.open(self._path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
