#!/usr/bin/env bash
# Idempotent set-up shared by the README commands: the Debian Fashion-MNIST
# files (the embedded default data) and a virtual environment at .venv/.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] installing Debian package dataset-fashion-mnist"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >/dev/null
  else
    echo "[setup] Fashion-MNIST files absent and apt-get unavailable: the TFDS" \
         "fashion_mnist builder will be used (needs a network)." >&2
  fi
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
stamp=.venv/.cpc_tf_installed
want=$(cat setup.cfg pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[setup] creating .venv and installing cpc-tf (first run takes a few minutes)"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
