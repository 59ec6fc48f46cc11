"""launch/supervised_baseline.py end to end on mocked TFDS, Fashion-MNIST and an image
folder; resume; same-seed reruns agree."""

import csv
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from cpc_tf import configs
from cpc_tf.eval import supervised
from flags import evaluation
from test_held_out import check_held_out, make_folder
from test_linear_eval_binary import ROOT, run_binary, saved_step

BINARY = "launch.supervised_baseline"
SMALL = ["--preset=supervised_tiny", "--image_size=16", "--batch_per_replica=4",
         "--train_steps=2", "--eval_every=1", "--label_fraction=0.5"]


def test_end_to_end_on_mocked_tfds(tmp_path):
  """cifar10 through tfds.testing.mock_data (random images, no download)."""
  out = str(tmp_path / "supervised")
  argv = ["supervised_baseline", *SMALL, "--dataset=cifar10", "--test_split=test",
          "--validation_fraction=0.25", f"--output_dir={out}"]
  script = textwrap.dedent(f"""
      import sys
      import tensorflow_datasets as tfds
      from absl import app
      from launch import supervised_baseline
      sys.argv = {argv!r}
      with tfds.testing.mock_data(num_examples=40):
        app.run(supervised_baseline.main)
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert "Supervised tiny" in proc.stdout
  with open(os.path.join(out, "results.json")) as f:
    doc = json.load(f)
  assert doc["protocol"] == "supervised" and doc["dataset"] == "cifar10"
  assert doc["encoder"] == "tiny"
  assert [(r["method"], r["split"]) for r in doc["rows"]] == [
      ("Supervised tiny", "validation"), ("Supervised tiny", "test")]
  assert all(r["num_train_examples"] == 15 for r in doc["rows"])  # (40 - 10) / 2
  with open(os.path.join(out, "subset.json")) as f:
    subset = json.load(f)
  assert subset["train"]["source"] == "cifar10" and subset["test"]["split"] == "test"
  assert len(subset["validation_ids"]) == 10
  assert os.path.exists(os.path.join(out, "sweep.csv"))


@pytest.mark.slow
def test_fashion_mnist_resumes_after_an_interruption(tmp_path):
  out = str(tmp_path / "supervised")
  args = [*SMALL, "--max_examples=80", "--validation_fraction=0.2", "--sweep_size=2",
          f"--output_dir={out}"]
  log = run_binary(BINARY, *args, "--stop_after_steps=3", expect=75)
  assert "Interrupted: stopped at step 1 of supervised (point 1)" in log
  # The budget of 3 steps: point 0 (2 steps) is in sweep.csv, point 1 saved at step 1.
  with open(os.path.join(out, "sweep.csv")) as f:
    assert [int(r["point"]) for r in csv.DictReader(f)] == [0]
  assert saved_step(os.path.join(out, "point-1", "supervised")) == 1
  log = run_binary(BINARY, *args)
  assert "sweep point 1/2" not in log  # finished point skipped via sweep.csv
  assert "supervised (point 1): resuming at step 1 of 2" in log
  with open(os.path.join(out, "sweep.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [int(r["point"]) for r in rows] == [0, 1] and rows[1]["steps"] == "2"
  with open(os.path.join(out, "results.json")) as f:
    doc = json.load(f)
  assert doc["config"]["architecture"] == "tiny" and len(doc["rows"]) == 2


def test_unknown_architecture_and_flags():
  fv = flags.FlagValues()
  evaluation.define_flags("supervised", fv)
  with pytest.raises(flags.IllegalFlagValueError):
    fv(["prog", "--output_dir=o", "--architecture=resnet18"])
  fv = flags.FlagValues()
  evaluation.define_flags("supervised", fv)
  fv(["prog", "--output_dir=o", "--architecture=resnet152_v2", "--dropout=0.2",
      "--weight_decay_mode=decoupled"])
  config = evaluation.config_from_flags("supervised", fv)
  assert config.architecture == "resnet152_v2" and config.hparams.dropout == 0.2
  assert config.weight_decay_mode == "decoupled" and fv["weight_decay_mode"].default == "l2"
  assert "supp. C.1" in fv["weight_decay_mode"].help
  with pytest.raises(flags.IllegalFlagValueError):
    fv(["prog", "--output_dir=o", "--weight_decay_mode=adamw"])
  assert "model_dir" not in fv  # trained from pixels
  # --help shows the default preset's value (supervised_tiny), not the dataclass field's.
  assert fv["architecture"].default == configs.supervised_tiny().architecture == "tiny"


def test_image_folder_with_split_folders_validates_and_tests_on_them(tmp_path):
  """Issue 9: train/, validation/ and test/ of a folder: model selection on
  validation/, the report on test/, no image of either trained on."""
  folder = make_folder(tmp_path / "images", splits={"train": 6, "validation": 2, "test": 3})
  out = str(tmp_path / "supervised")
  log = run_binary(BINARY, *SMALL, f"--dataset=folder:{folder}", f"--output_dir={out}")
  assert "on 9 images (test split)" in log
  with open(os.path.join(out, "subset.json")) as f:
    subset = json.load(f)
  splits = check_held_out(out, "split_folders", trained_ids=subset["train_ids"])
  assert sorted(subset["validation_ids"]) == sorted(splits["ids"]["validation"])
  assert len(subset["train_ids"]) == 9  # half of train/'s 18 images
  assert subset["validation"]["split"] == "validation"


@pytest.mark.slow  # over 10 s here: kept out of the 15-minute default suite
def test_same_seed_rerun_gives_identical_accuracies(tmp_path):
  """Issue 9: the classifier's initial weights were not seeded."""
  config = configs.replace(
      configs.supervised_tiny(), image_size=16, train_steps=2, eval_every=1,
      **{"hparams.batch_per_replica": 4, "subset.label_fraction": 0.5,
         "subset.data.max_examples": 40, "subset.validation_fraction": 0.25})
  docs = [supervised.train_supervised(config, str(tmp_path / f"run{i}"), verbose=False)
          for i in range(2)]
  assert docs[0]["rows"] == docs[1]["rows"]
  # Accuracies on 10 images could tie by chance: the trained weights must agree too
  # (same process and device; the tolerance only absorbs thread-order rounding).
  weights = [_weights(tmp_path / f"run{i}" / "point-0" / "supervised") for i in range(2)]
  assert weights[0].keys() == weights[1].keys() and weights[0]
  for name, value in weights[0].items():
    np.testing.assert_allclose(weights[1][name], value, rtol=1e-5, atol=1e-6,
                               err_msg=name)


def _weights(run_dir):
  reader = tf.train.load_checkpoint(str(run_dir))
  tensors = {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
  return {name: t for name, t in tensors.items()
          if isinstance(t, np.ndarray) and t.dtype.kind == "f"}
