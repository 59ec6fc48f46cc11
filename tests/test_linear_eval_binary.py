"""launch/linear_eval.py end to end on Fashion-MNIST: interrupt, resume, results.json."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf
from absl import flags

from cpc_tf import configs
from flags import evaluation
from test_encoders import pretrained_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(module, *args, expect=0):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == expect, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout + proc.stderr


def saved_step(run_dir):
  """The `step` of the latest checkpoint of a phase directory, read back.

  Interruption tests check the state a run left (--stop_after_steps is a step
  budget: the run ends by itself at a known step, no signal, no timing).
  """
  reader = tf.train.load_checkpoint(run_dir)
  return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return pretrained_model_dir(tmp_path_factory)


ARGS = ["--preset=linear_eval_tiny", "--max_examples=64", "--batch_size=8",
        "--train_steps=3", "--eval_every=2"]


def check_results(out, model_dir):
  with open(os.path.join(out, "results.json")) as f:
    doc = json.load(f)
  assert doc["protocol"] == "linear" and doc["dataset"] == "fashion_mnist"
  assert doc["encoder"] == model_dir and doc["config"]["train_steps"] == 3
  (row,) = doc["rows"]
  assert row["method"] == "CPC v2 linear" and row["split"] == "test"
  assert row["num_train_examples"] == 64 and 0 <= row["top1"] <= row["top5"] <= 1


def test_linear_eval_end_to_end(model_dir, tmp_path):
  out = str(tmp_path / "linear")
  log = run_binary("launch.linear_eval", *ARGS, f"--model_dir={model_dir}",
                   f"--output_dir={out}")
  assert "linear (point 0) step 3/3" in log and "test: top-1" in log
  assert "CPC v2 linear" in log
  check_results(out, model_dir)
  assert os.path.exists(os.path.join(out, "linear", "ckpt-3.index"))


@pytest.mark.slow
def test_linear_eval_resumes_after_an_interruption(model_dir, tmp_path):
  out = str(tmp_path / "linear")
  args = [*ARGS, f"--model_dir={model_dir}", f"--output_dir={out}"]
  log = run_binary("launch.linear_eval", *args, "--stop_after_steps=1", expect=75)
  assert "Interrupted: stopped at step 1 of linear" in log
  assert saved_step(os.path.join(out, "linear")) == 1
  assert not os.path.exists(os.path.join(out, "linear", "done.json"))
  assert not os.path.exists(os.path.join(out, "results.json"))
  log = run_binary("launch.linear_eval", *args)
  assert "linear (point 0): resuming at step 1 of 3" in log
  assert saved_step(os.path.join(out, "linear")) == 3
  with open(os.path.join(out, "linear", "done.json")) as f:
    assert json.load(f)["steps"] == 3
  check_results(out, model_dir)


def test_flags_build_the_config():
  fv = flags.FlagValues()
  evaluation.define_flags("linear", fv)
  fv(["prog", "--model_dir=m", "--output_dir=o", "--learning_rate=0.01",
      "--dataset=cifar10", "--grid=linear_iclr"])
  config = evaluation.config_from_flags("linear", fv)
  want = configs.replace(configs.linear_eval_tiny(), learning_rate=0.01, grid="linear_iclr",
                         **{"data.source": "cifar10"})
  assert config == want
  # Defaults shown come from the dataclass (supp. B: Adam 5e-4, batch 512).
  assert fv["learning_rate"].default == 5e-4 and fv["batch_size"].default == 512
