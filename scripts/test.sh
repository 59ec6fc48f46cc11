#!/usr/bin/env bash
# README test command: set up, then run the default (fast) test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -m slow`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
cd "$repo"
exec .venv/bin/python -m pytest "$@"
