"""Progress of a long command-line job (report rebuilds, camera replays) on stderr, shared by both CLIs.

stdout stays what scripts parse; progress goes only to stderr. On a terminal one line is redrawn in place
(`\\r`); in a log (CI, systemd's journal), where a carriage return would leave thousands of lines, a plain line
is printed each time another `every_pct` percent is done. Both end with one summary line. `--no-progress`
turns it all off (`enabled=False`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


def duration(seconds: float) -> str:
    """`0:07`, `12:05`, `1:02:03`: minutes and seconds, with hours when there are any."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _rate(done: int, elapsed: float) -> str:
    """Per second; per minute for slow jobs (a report day takes tens of seconds), where /s would read 0.0."""
    if elapsed <= 0:
        return "-/s"
    rate = done / elapsed
    return f"{rate:.1f}/s" if rate >= 1 or done == 0 else f"{rate * 60:.1f}/min"


def progress_line(label: str, done: int, total: int | None, elapsed: float, unit: str) -> str:
    """`label: 30/120 days 25% 1.5/s ETA 1:00`; without a total only the count and the rate."""
    rate = done / elapsed if elapsed > 0 else 0.0
    rate_text = _rate(done, elapsed)
    if not total:
        return f"{label}: {done} {unit} {rate_text}"
    eta = duration((total - done) / rate) if rate > 0 else "?"
    return f"{label}: {done}/{total} {unit} {100 * done / total:.0f}% {rate_text} ETA {eta}"


def summary_line(label: str, done: int, total: int | None, elapsed: float, unit: str, finished: bool) -> str:
    """`label: 120/120 days in 1:20 (1.5/s)`, or `label: stopped at 30/120 days after 0:20 (1.5/s)`."""
    count = f"{done}/{total}" if total else f"{done}"
    rate = _rate(done, elapsed)
    if finished:
        return f"{label}: {count} {unit} in {duration(elapsed)} ({rate})"
    return f"{label}: stopped at {count} {unit} after {duration(elapsed)} ({rate})"


class Progress:
    """Counts a job's steps and shows `done/total`, percent, rate and ETA on `stream` (default: stderr).

    Use as a context manager: leaving it prints the summary, or where the job stopped if it raised; inside it,
    a log line bound for the same terminal erases the bar first (the next step redraws it).
    `clock` is injectable so tests need not sleep.
    """

    def __init__(self, label: str, total: int | None, *, unit: str = "items", stream: TextIO | None = None,
                 enabled: bool = True, every_pct: int = 10, redraw_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.total = total if total and total > 0 else None
        self.unit = unit
        self.done = 0
        self.enabled = enabled
        self.every_pct = every_pct
        self.redraw_s = redraw_s
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = clock()
        self._tty = bool(getattr(self._stream, "isatty", lambda: False)())
        self._drawn = 0  # width of the line now on the terminal (0: none)
        self._last_draw = float("-inf")
        self._next_pct = every_pct
        self._finished = False
        self._log_handlers: list[logging.Handler] = []

    def __repr__(self) -> str:
        return f"<Progress {self.label!r} {self.done}/{self.total} tty={self._tty} enabled={self.enabled}>"

    def __enter__(self) -> Progress:
        # A log line written to the same terminal would land behind the bar: erase the bar first.
        self._log_handlers = [h for h in logging.getLogger().handlers if getattr(h, "stream", None) is self._stream]
        for handler in self._log_handlers:
            handler.addFilter(self._erase_before_log)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for handler in self._log_handlers:
            handler.removeFilter(self._erase_before_log)
        self.finish(completed=kind is None)

    def _erase_before_log(self, record: logging.LogRecord) -> bool:
        self.clear_for(self._stream)
        return True

    def advance(self, steps: int = 1) -> None:
        self.done += steps
        if not self.enabled:
            return
        now = self._clock()
        if self._tty:
            if now - self._last_draw >= self.redraw_s:
                self._draw(progress_line(self.label, self.done, self.total, now - self._started, self.unit))
                self._last_draw = now
        elif self.total and 100 * self.done >= self._next_pct * self.total and self.done < self.total:
            self._write(progress_line(self.label, self.done, self.total, now - self._started, self.unit) + "\n")
            while 100 * self.done >= self._next_pct * self.total:
                self._next_pct += self.every_pct

    def clear_for(self, out: TextIO) -> None:
        """Erase the bar before a line goes to `out` when `out` is a terminal too (the next step redraws it)."""
        if self._drawn and getattr(out, "isatty", lambda: False)():
            self._write("\r" + " " * self._drawn + "\r")
            self._drawn = 0
            self._last_draw = float("-inf")

    def finish(self, completed: bool = True) -> None:
        """Print the summary once (on a terminal, over the bar)."""
        if self._finished:
            return
        self._finished = True
        if not self.enabled:
            return
        line = summary_line(self.label, self.done, self.total, self._clock() - self._started, self.unit, completed)
        if self._tty:
            self._draw(line)
            self._write("\n")
            self._drawn = 0
        else:
            self._write(line + "\n")

    def _draw(self, line: str) -> None:
        self._write("\r" + line + " " * max(0, self._drawn - len(line)))
        self._drawn = len(line)

    def _write(self, text: str) -> None:
        self._stream.write(text)
        self._stream.flush()
