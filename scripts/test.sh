#!/usr/bin/env bash
# The test command of README.md: creates .venv if needed, installs the project with its test extras,
# checks style with ruff, then runs the whole suite (unit + integration against real services).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv || { echo "cannot create a virtualenv: apt-get install -y python3-venv" >&2; exit 1; }
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

for tool in mosquitto nginx openssl chromium systemd-analyze pdftotext; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        package=${tool/systemd-analyze/systemd}
        echo "missing $tool: apt-get install -y ${package/pdftotext/poppler-utils} (or run .ci/run, which installs it)" >&2
        exit 1; }
done

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
