#!/usr/bin/env bash
# README main command: set up, then run the claim study on Fashion-MNIST end to end
# (pre-training, linear and few-label evaluation, the supervised baseline, the report).
# Extra arguments go to launch/study.py, e.g. `--seeds=0,1,2,3`. Rerunning resumes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
cd "$repo"
exec .venv/bin/python -m launch.study --preset=study_fashion_mnist \
  --output_dir="${OUTPUT_DIR:-runs/study}" "$@"
