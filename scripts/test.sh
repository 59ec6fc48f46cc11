#!/usr/bin/env bash
# README test command: set up, then run the default (fast) test suite in two worker
# processes (pytest-xdist, a test file per worker at a time: 1.7x faster on 2 cores).
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
cd "$repo"
exec .venv/bin/python -m pytest -n 2 --dist loadfile "$@"
