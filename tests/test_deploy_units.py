"""The systemd units in deploy/ are valid for systemd itself (`systemd-analyze verify`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
UNITS = sorted((REPO / "deploy/systemd").glob("*.service")) + sorted((REPO / "deploy/systemd").glob("*.timer"))


@pytest.mark.parametrize("unit", UNITS, ids=lambda p: p.name)
def test_unit_verifies(unit: Path, tmp_path: Path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.fail("systemd-analyze is missing: apt-get install -y systemd (.ci/run does)")
    # Point ExecStart at this checkout's virtualenv: verify insists the binaries exist.
    text = unit.read_text().replace("/opt/venuewatch/venv/bin/", f"{Path(sys.executable).parent}/")
    copy = tmp_path / unit.name
    copy.write_text(text)
    if unit.suffix == ".timer":  # verify checks that the service it starts exists beside it
        service = unit.with_suffix(".service")
        (tmp_path / service.name).write_text(
            service.read_text().replace("/opt/venuewatch/venv/bin/", f"{Path(sys.executable).parent}/"))
    result = subprocess.run([analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)
    complaints = [line for line in (result.stdout + result.stderr).splitlines() if unit.name in line]
    assert result.returncode == 0 and not complaints, result.stdout + result.stderr


def test_every_unit_is_shipped():
    assert {u.name for u in UNITS} == {"venuewatch-agent.service", "venuewatch-server.service",
                                       "venuewatch-report.service", "venuewatch-report.timer"}
