#!/usr/bin/env bash
# Installs what the tests need, then runs every test (slow ones included) in
# two pytest-xdist workers, one test file per work unit (tests/conftest.py);
# YOSHIMIDI_TEST_WORKERS=0 runs them in this one process.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup_env.sh
exec .venv/bin/python -m pytest -q -n "${YOSHIMIDI_TEST_WORKERS:-2}" "$@"
