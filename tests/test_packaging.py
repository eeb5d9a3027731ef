"""A Pi installs `.[edge]` only: the agent must not need the server's libraries."""

from __future__ import annotations

import subprocess
import sys


def test_agent_imports_nothing_from_the_server_side():
    code = (
        "import sys, edge.agent, edge.cli, edge.scenario\n"
        "server_libs = {'flask', 'sqlalchemy', 'argon2', 'waitress', 'amqtt', 'server'}\n"
        "loaded = sorted(m for m in server_libs if m in sys.modules)\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_extras_split_edge_and_server_dependencies():
    import tomllib
    from pathlib import Path

    project = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())["project"]
    edge = " ".join(project["optional-dependencies"]["edge"]).lower()
    server = " ".join(project["optional-dependencies"]["server"]).lower()
    assert "gpiozero" in edge and "flask" not in edge and "sqlalchemy" not in edge
    assert "flask" in server and "sqlalchemy" in server and "gpiozero" not in server


def test_server_side_commands_need_no_gpio_library():
    """The county server installs `.[server]` only: check-config and the server must not import gpiozero."""
    code = (
        "import sys, server.cli, server.configcheck, server.app\n"
        "print('gpiozero' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
