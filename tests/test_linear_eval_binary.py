"""launch/linear_eval.py end to end on Fashion-MNIST and an image folder: interrupt,
resume, results.json, the held-out test split, grid flags, --help."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from cpc_tf import checkpoints, configs
from cpc_tf import data as fm_data
from cpc_tf.configs import DataConfig
from cpc_tf.eval import classifiers, encoders, held_out, linear, results
from cpc_tf.eval import loop as loop_lib
from flags import evaluation
from test_encoders import pretrained_model_dir
from test_held_out import check_held_out, make_folder

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
  # Defaults shown are the binary's default preset's (no --preset on pytest's argv).
  tiny = configs.linear_eval_tiny()
  assert fv["learning_rate"].default == tiny.learning_rate
  assert fv["batch_size"].default == tiny.batch_size == 16
  paper = flags.FlagValues()
  evaluation.define_flags("linear", paper, argv=["--preset=linear_eval_paper"])
  assert paper["batch_size"].default == 512  # supp. B



def test_image_folder_is_tested_on_held_out_images_only(model_dir, tmp_path):
  """Issue 9: 'test' was the whole folder; now the carved 10% of each class, recorded."""
  folder = make_folder(tmp_path / "images")  # 3 classes x 10 images
  out = str(tmp_path / "linear")
  args = [*ARGS, f"--model_dir={model_dir}", f"--dataset=folder:{folder}"]
  log = run_binary("launch.linear_eval", *args, f"--output_dir={out}")
  assert "on 3 images (test split)" in log
  splits = check_held_out(out, "carved", trained_ids=read_ids(folder, "train"))
  assert len(splits["ids"]["train"]) == 27
  (row,) = results.read_results(out)["rows"]
  assert row["num_train_examples"] == 27
  # A split the folder does not have is refused before any output is written (the
  # other refusals: test_held_out.py).
  bad_out = tmp_path / "bad"
  log = run_binary("launch.linear_eval", *args, "--test_split=nonexistent",
                   f"--output_dir={bad_out}", expect=1)
  assert "Error: test_split='nonexistent': an image folder is tested on" in log, log[-2000:]
  assert not bad_out.exists()


def read_ids(folder, split, **kwargs):
  """Ids the data layer reads for `split` of a labelled folder (what a protocol trains on)."""
  from cpc_tf.data import example_ids
  return list(example_ids(DataConfig(source="folder", path=folder, split=split, **kwargs)))


def test_grid_flags_change_the_evaluation_grid_and_are_checked_first(model_dir, tmp_path):
  fv = flags.FlagValues()
  evaluation.define_flags("linear", fv)
  fv(["prog", "--model_dir=m", "--output_dir=o", "--grid_image_size=40"])
  config = evaluation.config_from_flags("linear", fv)
  pre = checkpoints.read_config(model_dir)
  grid = linear.eval_grid(pre, config.grid, config.grid_image_size,
                          config.grid_patch_size, config.grid_stride)
  assert (grid.image_size, grid.patch_size, grid.grid_size) == (40, 8, 5)
  assert grid.resize_to - grid.image_size == pre.model.grid.resize_to - 32
  out = tmp_path / "bad_grid"
  log = run_binary("launch.linear_eval", *ARGS, f"--model_dir={model_dir}",
                   "--grid_stride=5", f"--output_dir={out}", expect=1)
  assert "Error: A 8px patch with stride 5 does not tile" in log, log[-2000:]
  assert not out.exists()  # refused before any data or output


def test_help_lists_the_binarys_own_flags_with_the_presets_defaults():
  """Issue 9: --label_fraction, --learning_rate, --grid were only under --helpfull."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  for module, preset, shown in (
      ("launch.linear_eval", "linear_eval_paper", ("--learning_rate", "--grid_stride",
                                                  "--test_path", "(default: '512')")),
      ("launch.efficient_classification", "efficient_tiny",
       ("--label_fraction", "--learning_rate", "--test_split", "--strategy"))):
    text = subprocess.run([sys.executable, "-m", module, f"--preset={preset}", "--help"],
                          cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300).stdout
    for flag in shown:
      assert flag in text, (module, flag)
    assert f"--preset={preset}'s" in text


def test_validation_carve_is_stratified_disjoint_and_picks_the_tested_step(model_dir, tmp_path):
  data = DataConfig(source="fashion_mnist", max_examples=64)
  train, val = linear.carve_validation(data, 20, seed=3)
  assert len(val) == 20 and len(train) == 44 and not set(train) & set(val)
  assert linear.carve_validation(data, 20, seed=3) == (train, val)  # a rerun: same carve
  assert linear.carve_validation(data, 0, seed=3) == (None, None)
  with pytest.raises(ValueError, match="holds out every one of the 64"):
    linear.carve_validation(data, 64, seed=3)
  out = str(tmp_path / "linear")
  log = run_binary("launch.linear_eval", *ARGS, "--validation_size=20",
                   f"--model_dir={model_dir}", f"--output_dir={out}")
  assert "best at step" in log or "validation" in log
  with open(os.path.join(out, "results.json")) as f:
    rows = json.load(f)["rows"]
  assert [r["split"] for r in rows] == ["validation", "test"]
  assert all(r["num_train_examples"] == 44 for r in rows)
  done = json.load(open(os.path.join(out, "linear", "done.json")))
  assert done["best_step"] in (2, 3) and done["val_top1"] == rows[0]["top1"]


@pytest.mark.parametrize("match_test_patches", [True, False])
def test_a_jittered_encoder_is_validated_and_tested_on_framed_patches(
    model_dir, tmp_path, monkeypatch, match_test_patches):
  # The tiny run had no jitter; pretend it had a 5 px one (arXiv v1 4.1).
  real_load = linear.encoders.load

  def jittered(*args):
    encoder = real_load(*args)
    return dataclasses.replace(encoder, pretrain=configs.replace(
        encoder.pretrain, **{"augment.jitter_size": 5}))

  frames = []
  real_eval_dataset = linear.sweep.eval_dataset

  def spy(strategy, data_config, mode, batch_size, ids=None, **kwargs):
    form = kwargs.get("test_form")
    frames.append((mode, form.jitter_size if form is not None else 0))
    return real_eval_dataset(strategy, data_config, mode, batch_size, ids, **kwargs)

  monkeypatch.setattr(linear.encoders, "load", jittered)
  monkeypatch.setattr(linear.sweep, "eval_dataset", spy)
  config = configs.replace(configs.linear_eval_tiny(), train_steps=2, validation_size=20,
                           match_test_patches=match_test_patches,
                           **{"data.max_examples": 64})
  doc = linear.train_linear(model_dir, config, str(tmp_path / "linear"), verbose=False)
  want = 5 if match_test_patches else 0
  assert frames == [("linear_eval", want)] * 2  # the validation carve, then the test split
  assert [r["split"] for r in doc["rows"]] == ["validation", "test"]


def test_cached_grid_means_train_the_supp_b_head_and_test_like_the_patch_model(
    model_dir, tmp_path):
  data = DataConfig(source="fashion_mnist", max_examples=64, shuffle_buffer=64)
  config = dataclasses.replace(configs.linear_eval_tiny(), data=data, cache_features=True,
                               validation_size=16, batch_size=8, train_epochs=2.0,
                               eval_every_epochs=0.5, train_steps=1000, eval_every=1000,
                               patience=2)
  out = str(tmp_path / "cached")
  doc = linear.train_linear(model_dir, config, out, verbose=False)
  val, test = doc["rows"]
  assert val["num_train_examples"] == 48
  done = json.load(open(os.path.join(out, "linear", "done.json")))
  assert done["steps"] <= 12  # 2 epochs of 48 images in batches of 8
  saved = np.load(os.path.join(out, linear.FEATURES_FILE))
  assert saved["train_x"].shape[0] == 48 and saved["validation_x"].shape[0] == 16
  # The head that was tested, applied to whole patch grids (mean after the 1x1
  # conv) instead of grid means, classifies the test images the same way.
  encoder = encoders.load(model_dir)
  grid = encoder.pretrain.model.grid
  model = classifiers.linear_classifier(encoder.model, grid, 10, config.bn_momentum)
  tf.train.Checkpoint(head=model.head).read(
      loop_lib.best_path(os.path.join(out, "linear"))).expect_partial()
  hits = count = 0
  for x, y in fm_data.linear_eval_dataset(held_out.test_data(data, "test"), 64, grid=grid):
    hits += int(np.sum(np.argmax(model(x).numpy(), 1) == y.numpy()))
    count += len(y)
  # Grid means and whole grids differ only in float rounding: at most one flipped argmax.
  assert abs(hits / count - test["top1"]) <= 1.0 / count
  mtime = os.path.getmtime(os.path.join(out, linear.FEATURES_FILE))
  assert linear.train_linear(model_dir, config, out, verbose=False)["rows"] == doc["rows"]
  assert os.path.getmtime(os.path.join(out, linear.FEATURES_FILE)) == mtime


@pytest.mark.parametrize("changes, why", [
    ({}, None),
    ({"augment.flip_p": 0.5}, "augments its patches"),
    ({"model.grid.resize_to": 36}, "crops 32 px at random from 36 px"),
])
def test_only_unaugmented_whole_image_pretraining_can_be_cached(changes, why):
  pre = configs.replace(configs.tiny(), **changes)
  got = linear.uncacheable(pre, pre.model.grid)
  assert got is None if why is None else why in got


def test_cache_features_is_refused_for_an_augmenting_encoder_before_writing(
    model_dir, tmp_path):
  flipped = str(tmp_path / "flipped")
  shutil.copytree(model_dir, flipped)
  checkpoints.write_config(
      configs.replace(checkpoints.read_config(model_dir), **{"augment.flip_p": 0.5}),
      flipped)
  config = dataclasses.replace(configs.linear_eval_tiny(), cache_features=True)
  out = tmp_path / "out"
  with pytest.raises(ValueError, match="augments its patches.*cache_features=False"):
    linear.train_linear(flipped, config, str(out), verbose=False)
  assert not out.exists()
