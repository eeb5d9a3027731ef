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

# The store and integration tests again on PostgreSQL (issue 7), when one is reachable as in CI.
if [ $# -eq 0 ]; then
    if .venv/bin/python -c "import psycopg; psycopg.connect('host=127.0.0.1 port=5432 dbname=test user=postgres', connect_timeout=3).close()" 2>/dev/null; then
        .venv/bin/python -m pytest --database postgresql -q \
            tests/server/test_ingest.py tests/server/test_ingest_concurrency.py tests/server/test_audit.py \
            tests/server/test_timeseries.py tests/server/test_migrations.py \
            tests/integration/test_horizontal_ingest.py \
            tests/integration/test_end_to_end.py \
            tests/integration/test_nothing_lost.py
    else
        echo "PostgreSQL not reachable at 127.0.0.1:5432 (user postgres, trust): the PostgreSQL pass is skipped" >&2
    fi
fi
