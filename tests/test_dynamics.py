"""Learning dynamics library (cpc_tf/drivers/dynamics.py) with a stand-in classifier run.

The real classifier (efficient.train_efficient) runs in
tests/test_learning_dynamics_binary.py; here a fake cell writes a results.json
so that step resolution, step 0, resuming and the outputs are checked in
seconds.
"""

import csv
import json
import os

import pytest
import tensorflow as tf

from cpc_tf import checkpoints, configs
from cpc_tf.drivers import dynamics
from cpc_tf.eval import results, subsets
from cpc_tf.model import build_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A pre-training model_dir layout with checkpoints at steps 2 and 4 (weights random)."""
  path = str(tmp_path_factory.mktemp("pretrain"))
  config = configs.tiny()
  checkpoints.write_config(config, path)
  model = build_model(config.model)
  for step in (2, 4):
    tf.train.Checkpoint(averaged_model=model).write(
        os.path.join(path, f"ckpt-{step}"))
  return path


def _fake_cell(calls):
  def cell(enc_dir, enc_step, config, out, subset_file):
    calls.append((enc_dir, enc_step, config.subset.label_fraction, config.finetune,
                  subset_file))
    f = config.subset.label_fraction
    # Accuracy grows with the step and the fraction, like arXiv v1 Figure 5.
    acc = min(1.0, 0.1 + 0.1 * enc_step + 0.2 * f)
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, subsets.SUBSET_FILE), "w") as fh:
      fh.write("{}")
    rows = [results.row("CPC v2 (frozen)", f, acc, min(1.0, acc + 0.3), split, 10)
            for split in ("validation", "test")]
    return results.write_results(os.path.join(out, results.RESULTS_FILE), "efficient",
                                 "fashion_mnist", f"{enc_dir}@{enc_step}", rows, {})
  return cell


def test_steps(model_dir):
  assert dynamics.available_steps(model_dir) == [2, 4]
  assert dynamics.resolve_steps(model_dir, "all") == [0, 2, 4]
  assert dynamics.resolve_steps(model_dir, [4, 0, 4]) == [0, 4]
  with pytest.raises(ValueError, match=r"no checkpoint at step\(s\) \[3\]; it has \[2, 4\]"):
    dynamics.resolve_steps(model_dir, [0, 3])
  with pytest.raises(FileNotFoundError, match="not a pre-training model_dir"):
    dynamics.resolve_steps(os.path.dirname(model_dir), "all")


def test_step_zero_is_a_random_init_checkpoint(model_dir, tmp_path):
  enc_dir, step = dynamics.encoder_source(model_dir, 0, str(tmp_path))
  assert (enc_dir, step) == (os.path.join(str(tmp_path), "random_init"), 0)
  config, _ = checkpoints.load_averaged_model(enc_dir, 0)
  assert config == checkpoints.read_config(model_dir)
  written = os.path.getmtime(os.path.join(enc_dir, "ckpt-0.index"))
  assert dynamics.random_init_dir(model_dir, str(tmp_path)) == enc_dir  # reused
  assert os.path.getmtime(os.path.join(enc_dir, "ckpt-0.index")) == written
  assert dynamics.encoder_source(model_dir, 4, str(tmp_path)) == (model_dir, 4)


def test_run_writes_tables_plot_and_skips_finished_cells(model_dir, tmp_path):
  out = str(tmp_path / "dynamics")
  config = configs.efficient_tiny()
  calls = []
  doc = dynamics.run(model_dir, out, configs.DynamicsConfig(config, (2, 4), (0.5, 1.0)),
                     cell_fn=_fake_cell(calls), verbose=False)
  assert [(c[1], c[2]) for c in calls] == [(2, 0.5), (2, 1.0), (4, 0.5), (4, 1.0)]
  assert all(c[3] is False for c in calls)  # phase 1 only
  # Later steps reuse the labelled subset of the first step at that fraction.
  assert calls[0][4] is None and calls[2][4].endswith(os.path.join(
      "step-2", "labels-0.5", "subset.json"))
  assert doc["protocol"] == "dynamics"
  assert [(r["checkpoint_step"], r["label_fraction"], r["split"]) for r in doc["rows"]] == [
      (2, 0.5, "validation"), (2, 0.5, "test"), (2, 1.0, "validation"), (2, 1.0, "test"),
      (4, 0.5, "validation"), (4, 0.5, "test"), (4, 1.0, "validation"), (4, 1.0, "test")]
  with open(os.path.join(out, "results.json")) as f:
    assert json.load(f) == doc
  assert configs.from_dict(configs.DynamicsConfig, doc["config"]) == configs.DynamicsConfig(
      config, (2, 4), (0.5, 1.0))  # the steps and fractions that ran
  with open(os.path.join(out, "dynamics.csv")) as f:
    lines = list(csv.DictReader(f))
  assert len(lines) == 8 and lines[1]["split"] == "test" and lines[1]["top1"] == "0.4"

  again = []
  doc = dynamics.run(model_dir, out, configs.DynamicsConfig(config, "all", (0.5, 1.0)),
                     cell_fn=_fake_cell(again), verbose=False)
  assert [(c[1], c[2]) for c in again] == [(0, 0.5), (0, 1.0)]  # only the new cells
  assert again[0][0] == os.path.join(out, "random_init")
  assert [r["checkpoint_step"] for r in doc["rows"]] == [0] * 4 + [2] * 4 + [4] * 4
  table = open(os.path.join(out, "dynamics.md")).read()
  assert "| CPC v2 (frozen) (step 0) | 20.0 | 30.0 |" in table
  assert "| CPC v2 (frozen) (step 4) | 60.0 | 70.0 |" in table
  assert os.path.getsize(os.path.join(out, "dynamics.png")) > 10_000


def test_bad_fractions(model_dir, tmp_path):
  with pytest.raises(ValueError, match="label_fraction=0"):
    dynamics.run(model_dir, str(tmp_path),
                 configs.DynamicsConfig(configs.efficient_tiny(), (0,), (0.0, 0.5)),
                 cell_fn=_fake_cell([]), verbose=False)


def test_dynamics_config_json_round_trip():
  config = configs.DynamicsConfig(configs.efficient_tiny(), (0, 4), (0.5, 1.0))
  for c in (config, configs.DynamicsConfig()):
    assert configs.from_dict(configs.DynamicsConfig,
                             json.loads(json.dumps(configs.to_dict(c)))) == c
