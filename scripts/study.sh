#!/usr/bin/env bash
# README main command: set up, then run the claim study on Fashion-MNIST end to end
# (pre-training, linear and few-label evaluation, the supervised baseline, the report).
# Extra arguments go to launch/study.py, e.g. `--seeds=0,1,2,3`, or
# `--preset=study_fashion_mnist_quick` for the smoke run. Rerunning resumes.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start=$(date +%s%N)
bash "$repo/scripts/setup_env.sh"
setup=$(awk -v a="$start" -v b="$(date +%s%N)" 'BEGIN { printf "%.1f", (b - a) / 1e9 }')
cd "$repo"
exec .venv/bin/python -m launch.study --preset=study_fashion_mnist \
  --output_dir="${OUTPUT_DIR:-runs/study}" --setup_seconds="$setup" "$@"
