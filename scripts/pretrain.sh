#!/usr/bin/env bash
# README main command: set up, then pre-train the small preset on Fashion-MNIST.
# Extra arguments go to launch/pretrain.py, e.g. `--train_steps=100`.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
cd "$repo"
exec .venv/bin/python -m launch.pretrain --preset=fashion_mnist_small \
  --model_dir="${MODEL_DIR:-runs/fashion_mnist_small}" "$@"
