"""protocol/progress.py: what a terminal and a log see, on an injected clock."""

from __future__ import annotations

import io
import logging

import pytest

from protocol.progress import Progress, duration, progress_line, summary_line


class FakeStream(io.StringIO):
    """A stand-in for stderr: a terminal when `tty` is true (isatty), else a log file or a pipe."""

    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_lines_show_count_percent_rate_and_eta():
    assert progress_line("replay", 30, 120, 20.0, "frames") == "replay: 30/120 frames 25% 1.5/s ETA 1:00"
    assert progress_line("replay", 0, 120, 0.0, "frames") == "replay: 0/120 frames 0% -/s ETA ?"
    assert progress_line("replay", 30, None, 20.0, "frames") == "replay: 30 frames 1.5/s"
    assert summary_line("r", 120, 120, 80.0, "days", True) == "r: 120/120 days in 1:20 (1.5/s)"
    assert summary_line("r", 30, 120, 20.0, "days", False) == "r: stopped at 30/120 days after 0:20 (1.5/s)"
    assert summary_line("r", 30, 30, 845.0, "days", True) == "r: 30/30 days in 14:05 (2.1/min)"
    assert [duration(s) for s in (7, 725, 3723)] == ["0:07", "12:05", "1:02:03"]


def test_a_log_gets_a_line_every_ten_percent_and_the_summary():
    stream, clock = FakeStream(tty=False), Clock()
    with Progress("rebuild", 40, unit="days", stream=stream, clock=clock) as bar:
        for _ in range(40):
            clock.now += 0.5
            bar.advance()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert lines[0] == "rebuild: 4/40 days 10% 2.0/s ETA 0:18"
    assert [line.split()[1] for line in lines[:-1]] == [f"{n}/40" for n in range(4, 40, 4)]
    assert lines[-1] == "rebuild: 40/40 days in 0:20 (2.0/s)"


def test_a_big_step_prints_one_line_not_one_per_threshold_passed():
    stream = FakeStream(tty=False)
    with Progress("p", 10, stream=stream, clock=Clock()) as bar:
        bar.advance(5)
    assert len(stream.getvalue().splitlines()) == 2  # 5/10, then the summary


def test_a_terminal_gets_one_line_redrawn_in_place_at_most_every_redraw_interval():
    stream, clock = FakeStream(tty=True), Clock()
    with Progress("replay", 100, unit="frames", stream=stream, clock=clock, redraw_s=0.2) as bar:
        for _ in range(100):
            clock.now += 0.01
            bar.advance()
    text = stream.getvalue()
    summary = "replay: 100/100 frames in 0:01 (100.0/s)"
    # The summary overwrites the (longer) bar: spaces cover the bar's tail, then the one newline.
    assert text.count("\n") == 1 and text.endswith("\r" + summary + "  \n")
    draws = text.split("\r")[1:-1]
    assert draws[0].startswith("replay: 1/100 frames 1% ")
    assert 4 <= len(draws) <= 6  # every 0.2 s of 1 s, not 100 times


def test_clearing_for_stdout_on_the_same_terminal_and_redrawing_at_once():
    stream, clock = FakeStream(tty=True), Clock()
    bar = Progress("p", 10, stream=stream, clock=clock)
    bar.advance()
    bar.clear_for(FakeStream(tty=False))  # stdout piped to a script: the bar stays
    assert not stream.getvalue().endswith("\r")
    bar.clear_for(FakeStream(tty=True))
    assert stream.getvalue().endswith("\r" + " " * len("p: 1/10 items 10% -/s ETA ?") + "\r")
    bar.advance()  # no time passed, yet drawn again
    assert stream.getvalue().endswith("p: 2/10 items 20% -/s ETA ?")


def test_a_log_line_on_the_same_terminal_erases_the_bar_first():
    stream, clock = FakeStream(tty=True), Clock()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with Progress("p", 2, stream=stream, clock=clock) as bar:
            bar.advance()
            logging.getLogger("venuewatch.test").warning("event=something")
            bar.advance()
    finally:
        root.removeHandler(handler)
    assert not handler.filters
    assert "\r" + " " * len("p: 1/2 items 50% -/s ETA ?") + "\revent=something\n" in stream.getvalue()


def test_disabled_it_writes_nothing_and_a_failure_says_where_it_stopped():
    stream = FakeStream(tty=False)
    with Progress("p", 10, stream=stream, enabled=False) as bar:
        bar.advance(10)
    assert stream.getvalue() == ""
    clock = Clock()
    with pytest.raises(RuntimeError), Progress("p", 10, stream=stream, clock=clock) as bar:
        bar.advance(3)
        clock.now += 3
        raise RuntimeError("disk full")
    assert stream.getvalue().splitlines()[-1] == "p: stopped at 3/10 items after 0:03 (1.0/s)"


def test_an_unknown_total_prints_only_the_summary_in_a_log():
    stream, clock = FakeStream(tty=False), Clock()
    with Progress("replay", None, unit="frames", stream=stream, clock=clock) as bar:
        for _ in range(50):
            clock.now += 0.1
            bar.advance()
    assert stream.getvalue() == "replay: 50 frames in 0:05 (10.0/s)\n"
