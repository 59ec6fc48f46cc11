"""launch/export.py end to end on a model_dir, and its refusals."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from test_export import fake_run
from tolerances import assert_close_f32, network_terms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run([sys.executable, "-m", "launch.export", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)


def test_export_binary_writes_a_loadable_saved_model(tmp_path):
  model_dir, export_dir = str(tmp_path / "run"), str(tmp_path / "export")
  config, _, averaged = fake_run(model_dir)
  proc = run(f"--model_dir={model_dir}", f"--export_dir={export_dir}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "patched:     images [B, 32, 32, 3]" in proc.stdout
  loaded = tf.saved_model.load(export_dir)
  images = tf.random.stateless_uniform([1, 32, 32, 3], seed=[3, 4])
  # The SavedModel's graph against eager Keras: float32 rounding through the encoder.
  assert_close_f32(loaded.signatures["patched"](images=images)["latents"],
                   averaged.latents(images), *network_terms(averaged.encoder))


def test_export_binary_refuses_a_directory_without_a_run(tmp_path):
  proc = run(f"--model_dir={tmp_path}", f"--export_dir={tmp_path / 'export'}")
  assert proc.returncode != 0
  assert "config.json not found" in proc.stderr


@pytest.mark.slow  # over 14 s here: kept out of the 15-minute default suite
def test_export_binary_takes_checkpoint_step_like_every_binary(tmp_path):
  model_dir = str(tmp_path / "run")
  fake_run(model_dir)  # ckpt-7
  proc = run(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'e7'}",
             "--checkpoint_step=7")
  assert proc.returncode == 0, proc.stderr[-3000:]
  proc = run(f"--model_dir={model_dir}", f"--export_dir={tmp_path / 'e9'}",
             "--checkpoint_step=999")
  assert proc.returncode != 0 and "checkpoint at step 999" in proc.stderr, proc.stderr[-2000:]
