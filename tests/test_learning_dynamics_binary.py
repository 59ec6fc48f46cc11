"""launch/learning_dynamics.py end to end on a tiny pre-training run."""

import csv
import json
import os
import subprocess
import sys

import pytest
from absl import flags

from cpc_tf import configs, train
from cpc_tf.drivers import dynamics
from flags import evaluation
from test_held_out import check_held_out, make_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Seconds-long classifier cells: 60 images, 2 SGD steps.
SMALL = ("--preset=efficient_tiny", "--max_examples=60", "--frozen_steps=2",
         "--eval_every=2")


def _run(*args):
  return subprocess.run([sys.executable, "-m", "launch.learning_dynamics", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
  """`tiny` pre-trained for 2 steps: checkpoint ckpt-2 (step 0 is made by the binary)."""
  path = str(tmp_path_factory.mktemp("tiny_pretrain"))
  config = configs.replace(configs.tiny(), train_steps=2, checkpoint_every=2)
  train.pretrain(config, path, verbose=False)
  return path


@pytest.mark.slow
def test_two_checkpoints_table_plot_and_resume(model_dir, tmp_path):
  out = tmp_path / "dynamics"
  args = (f"--model_dir={model_dir}", f"--output_dir={out}", "--steps=all",
          "--label_fractions=0.5", *SMALL)
  first = _run(*args)
  assert first.returncode == 0, first.stderr[-3000:]
  assert "step 0, 50% labels: training" in first.stdout
  assert "step 2, 50% labels: training" in first.stdout
  assert "| CPC v2 (frozen) (step 0) |" in first.stdout
  assert "| CPC v2 (frozen) (step 2) |" in first.stdout
  doc = json.loads((out / "results.json").read_text())
  assert doc["protocol"] == "dynamics"
  test_rows = [r for r in doc["rows"] if r["split"] == "test"]
  assert [(r["checkpoint_step"], r["label_fraction"]) for r in test_rows] == [
      (0, 0.5), (2, 0.5)]
  assert all(0.0 <= r["top1"] <= r["top5"] <= 1.0 for r in test_rows)
  with open(out / "dynamics.csv") as f:
    assert len(list(csv.DictReader(f))) == len(doc["rows"])
  assert (out / "dynamics.md").exists() and (out / "dynamics.png").stat().st_size > 0
  assert (out / "random_init" / "ckpt-0.index").exists()

  second = _run(*args)
  assert second.returncode == 0, second.stderr[-3000:]
  assert "step 0, 50% labels: done earlier, skipped" in second.stdout
  assert "step 2, 50% labels: done earlier, skipped" in second.stdout
  assert "training" not in second.stdout
  assert json.loads((out / "results.json").read_text())["rows"] == doc["rows"]


def test_bad_steps_exit_with_a_message(tmp_path):
  bad_steps = _run(f"--model_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}",
                   "--steps=0,last")
  assert bad_steps.returncode == 1
  assert ("Error: --steps=0,last: steps takes {all} | tuple[int, ...], comma-separated; "
          "got '0,last'.") in bad_steps.stderr


def test_flags_come_from_the_dataclasses_and_exclude_phase_2():
  text = _run("--help").stdout  # absl exits 1 here
  defaults = configs.DynamicsConfig()
  # The efficient flags are listed with the default preset's values (issue 9).
  assert "--preset=efficient_tiny's" in text and "--test_path" in text
  assert f"(default: '{defaults.steps}')" in text
  assert "(default: '" + ",".join(f"{f:g}" for f in defaults.label_fractions) + "')" in text
  assert "--frozen_steps" in text and "--classifier_blocks" in text
  for name in ("label_fraction", "finetune", "finetune_steps", "finetune_epochs", "patience",
               "checkpoint_step", "stop_after_steps", "subset_file"):
    assert f"--{name}:" not in text and f"--[no]{name}:" not in text, name


def test_excluded_flags_are_neither_defined_nor_read():
  fv = flags.FlagValues()
  exclude = ("label_fraction", "finetune", "model_dir", "subset_file")
  evaluation.define_flags("efficient", fv, exclude=exclude)
  assert not any(name in fv for name in exclude)
  fv(["prog", "--output_dir=o", "--frozen_steps=3", "--dataset=imagenet2012"])
  config = evaluation.config_from_flags("efficient", fv, exclude=exclude)
  assert config.frozen_steps == 3 and config.subset.data.source == "imagenet2012"
  assert config.subset.label_fraction == configs.efficient_tiny().subset.label_fraction
  with pytest.raises(ValueError, match=r"exclude=\['label_fractions'\]"):
    evaluation.define_flags("efficient", flags.FlagValues(), exclude=["label_fractions"])


def test_image_folder_cells_test_on_the_held_out_split(model_dir, tmp_path):
  """Issue 9: each (checkpoint, fraction) cell reports on the folder's carved test
  split (the default --test_split for folders), never on an image it trained on."""
  folder = make_folder(tmp_path / "images", per_class=8)
  out = tmp_path / "dynamics"
  result = _run(f"--model_dir={model_dir}", f"--output_dir={out}", "--steps=2",
                "--label_fractions=0.5", "--preset=efficient_tiny", "--frozen_steps=1",
                "--eval_every=1", "--image_size=16", "--batch_per_replica=4",
                "--validation_fraction=0.25", f"--dataset=folder:{folder}")
  assert result.returncode == 0, result.stderr[-3000:]
  cell = dynamics.cell_dir(str(out), 2, 0.5)
  subset = json.loads(open(os.path.join(cell, "subset.json")).read())
  assert subset["test"]["split"] == "test"
  check_held_out(cell, "carved", trained_ids=subset["train_ids"] + subset["validation_ids"])
