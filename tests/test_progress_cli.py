"""Progress of the long commands, run as installers and timers run them: stdout unchanged, progress on stderr."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from datetime import date
from pathlib import Path

import cv2

from tests.conftest import make_server_files
from tests.edge import camera_frames as cf
from tests.server.conftest import VENUES

BIN = Path(sys.executable).parent


def run(*args: str, stderr_tty: bool = False) -> tuple[int, str, str]:
    """The command's exit code, stdout and stderr; stderr a terminal (a pty) when asked."""
    if not stderr_tty:
        done = subprocess.run([str(BIN / args[0]), *args[1:]], capture_output=True, text=True, timeout=120)
        return done.returncode, done.stdout, done.stderr
    master, slave = pty.openpty()
    proc = subprocess.Popen([str(BIN / args[0]), *args[1:]], stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    err = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the command exited and closed its end
            break
        if not chunk:
            break
        err += chunk
    out = proc.stdout.read()
    proc.stdout.close()
    os.close(master)
    return proc.wait(timeout=120), out, err.decode()


def _built_reports(config_path: Path, days: list[date]) -> None:
    """The days' reports in the database, without their PDFs (printing takes half a minute a day)."""
    from server.app import open_store
    from server.calendar import NationalCalendar
    from server.config import load_server_config
    from server.inventory import load_inventory
    from server.reports.archive import ReportArchive

    config = load_server_config(config_path)
    inventory = load_inventory(config.inventory)
    engine = open_store(config, inventory)
    archive = ReportArchive(engine, inventory, NationalCalendar(), config.tz, config.data_dir)
    for day in days:
        archive.build(day, pdf=False)
    engine.dispose()


def test_a_report_run_over_days_prints_progress_on_stderr_only(tmp_path: Path):
    config = make_server_files(tmp_path, "mqtt://127.0.0.1:1", VENUES)
    _built_reports(config, [date(2026, 11, 23), date(2026, 11, 24), date(2026, 11, 25)])
    args = ("venuewatch", "report", "nightly", "--date", "2026-11-23", "--to", "2026-11-25", "--if-missing",
            "--config", str(config))
    code, quiet_out, quiet_err = run(*args, "--no-progress")
    assert code == 0 and "report nightly:" not in quiet_err
    assert quiet_out == "".join(f"2026-11-{d} reports exist already; nothing to do\n" for d in (23, 24, 25))
    code, out, err = run(*args)
    assert code == 0 and out == quiet_out
    progress = [line for line in err.splitlines() if line.startswith("report nightly:")]
    # Not a terminal: a plain line per 10 % step passed (at 33 % and 67 %), then the summary; no carriage returns.
    assert [line.split()[2] for line in progress] == ["1/3", "2/3", "3/3"]
    assert progress[-1].startswith("report nightly: 3/3 days in ") and "\r" not in err


def test_a_report_range_that_ends_before_it_starts_is_refused(tmp_path: Path):
    config = str(make_server_files(tmp_path, "mqtt://127.0.0.1:1", VENUES))
    code, out, err = run("venuewatch", "report", "nightly", "--date", "2026-11-25", "--to", "2026-11-23",
                         "--config", config)
    assert code == 2 and out == ""
    assert "--to 2026-11-23 is before --date 2026-11-25" in err and "Traceback" not in err


def _clip(tmp_path: Path) -> Path:
    folder = tmp_path / "clip"
    folder.mkdir()
    frames = cf.highway(1, 200)
    for n, frame in enumerate([*frames[:120], *(cf.cover_black(f) for f in frames[120:160])], start=1):
        cv2.imwrite(str(folder / f"f{n:04d}.jpg"), frame)
    return folder


def test_camera_replay_keeps_its_json_lines_and_shows_progress_on_stderr(tmp_path: Path):
    args = ("venuewatch-agent", "camera-replay", "--source", str(_clip(tmp_path)), "--fps", "10")
    code, quiet_out, quiet_err = run(*args, "--no-progress")
    assert code == 0, quiet_err
    assert quiet_err.splitlines()[-1].startswith("160 frames, ") and "camera-replay:" not in quiet_err
    events = [json.loads(line) for line in quiet_out.splitlines()]
    assert any(e["kind"] == "tamper" for e in events)

    code, out, err = run(*args)
    assert code == 0 and out == quiet_out
    progress = [line for line in err.splitlines() if line.startswith("camera-replay:")]
    assert [line.split()[1] for line in progress] == [f"{n}/160" for n in range(16, 160, 16)] + ["160/160"]
    assert progress[-1].startswith("camera-replay: 160/160 frames in ")
    assert err.splitlines()[-1].startswith("160 frames, ")  # the summary installers know stays last

    code, tty_out, tty_err = run(*args, stderr_tty=True)
    assert code == 0 and tty_out == quiet_out
    assert "\rcamera-replay: 1/160 frames 1% " in tty_err  # redrawn in place on a terminal
    assert "camera-replay: 160/160 frames in " in tty_err
