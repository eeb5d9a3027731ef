"""The systemd units in deploy/ are valid for systemd itself (`systemd-analyze verify`), and say what the
deployment relies on: the agent's watchdog (Type=notify, WatchdogSec=; the agent's side is
tests/edge/test_sdnotify.py), its user and groups, and a restart policy for every service."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted(p for pattern in ("*.service", "*.timer", "*.target") for p in (REPO / "deploy/systemd").glob(pattern))


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies(unit: Path, tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install -y systemd (.ci/run does)")
    # Point ExecStart at this checkout's virtualenv: verify insists the binaries exist.
    text = unit.read_text().replace("/opt/venuewatch/venv/bin/", f"{Path(sys.executable).parent}/")
    copy = tmp_path / unit.name.replace("@.", "@1.")  # a template is verified as one of its instances
    copy.write_text(text)
    if unit.suffix == ".timer":  # verify checks that the service it starts exists beside it
        service = unit.with_suffix(".service")
        (tmp_path / service.name).write_text(
            service.read_text().replace("/opt/venuewatch/venv/bin/", f"{Path(sys.executable).parent}/"))
    result = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if copy.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_every_unit_is_shipped():
    assert {u.name for u in UNITS} >= {"venuewatch-agent.service", "venuewatch-server.service",
                                       "venuewatch-report.service", "venuewatch-report.timer"}


def settings(unit: Path) -> dict[str, dict[str, list[str]]]:
    """section -> key -> every value given (systemd allows a key more than once, e.g. SystemCallFilter=)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for raw in unit.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def seconds(value: str) -> float:
    """systemd time spans as the units use them: 60, 60s, 15min, 2h."""
    units = {"min": 60, "h": 3600, "ms": 0.001, "s": 1}
    for suffix, factor in units.items():
        if value.endswith(suffix):
            return float(value[: -len(suffix)]) * factor
    return float(value)


def test_the_agent_unit_runs_the_watchdog_protocol_the_agent_speaks():
    service = settings(REPO / "deploy/systemd/venuewatch-agent.service")["Service"]
    assert service["Type"] == ["notify"]  # READY=1 from edge/sdnotify.py, else the start times out
    assert service["NotifyAccess"] == ["main"]  # venuewatch-agent itself is the main pid (no wrapper)
    watchdog = seconds(service["WatchdogSec"][-1])
    assert 30 <= watchdog <= 300, "pinged every WatchdogSec/3; long enough for a slow SD card, short for a hang"
    assert seconds(service["TimeoutStartSec"][-1]) >= 30
    assert service["Restart"] == ["always"]  # also after the watchdog's SIGABRT
    assert "PYTHONFAULTHANDLER=1" in service["Environment"]  # the stacks of a hung agent land in the journal
    assert "AF_UNIX" in service["RestrictAddressFamilies"][-1].split()  # the notify socket
    unit = settings(REPO / "deploy/systemd/venuewatch-agent.service")["Unit"]
    assert unit["StartLimitIntervalSec"] == ["0"]  # never gives up restarting


def test_the_agent_runs_unprivileged_with_gpio_and_video():
    service = settings(REPO / "deploy/systemd/venuewatch-agent.service")["Service"]
    assert service["User"] == ["venuewatch"] and service["Group"] == ["venuewatch"]
    assert set(service["SupplementaryGroups"][-1].split()) == {"gpio", "video"}
    assert service["NoNewPrivileges"] == ["yes"] and service["CapabilityBoundingSet"] == [""]


@pytest.mark.parametrize("name", ["venuewatch-agent.service", "venuewatch-server.service",
                                  "venuewatch-report.service", "venuewatch-ingest@.service",
                                  "venuewatch-web.service", "venuewatch-scheduler.service"])
def test_every_service_restarts_after_a_failure(name):
    service = settings(REPO / "deploy/systemd" / name)["Service"]
    assert service.get("Restart", ["no"])[-1] in {"always", "on-failure"}
    assert seconds(service["RestartSec"][-1]) >= 1  # not a tight loop


def test_the_report_timer_catches_up_after_downtime():
    timer = settings(REPO / "deploy/systemd/venuewatch-report.timer")["Timer"]
    assert timer["OnCalendar"] == ["*-*-* 00:45:00 Asia/Shanghai"]
    assert timer["Persistent"] == ["true"]


def test_the_split_roles_run_one_role_each_and_start_together():
    ingest = settings(REPO / "deploy/systemd/venuewatch-ingest@.service")
    assert "--role ingest --instance %i" in ingest["Service"]["ExecStart"][-1]
    for role in ("web", "scheduler"):
        unit = settings(REPO / f"deploy/systemd/venuewatch-{role}.service")
        assert f"--role {role}" in unit["Service"]["ExecStart"][-1]
        assert unit["Unit"]["PartOf"] == ["venuewatch.target"]
    target = settings(REPO / "deploy/systemd/venuewatch.target")
    assert set(target["Unit"]["Wants"][-1].split()) == {"venuewatch-web.service", "venuewatch-scheduler.service"}
