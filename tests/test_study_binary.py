"""launch/study.py: flags -> StudyConfig, a tiny end-to-end study that resumes, and one
on an image folder (--dataset=folder:...)."""

import json
import os
import subprocess
import sys

import pytest
from absl import flags as absl_flags

from cpc_tf import configs
from cpc_tf.drivers import study_data
from cpc_tf.eval import results
from flags import config_flags
from flags import study as study_flags
from test_study_data import make_folder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args):
  values = absl_flags.FlagValues()
  study_flags.define_flags(values)
  values(config_flags.rewrite(["prog", "--output_dir=/tmp/x", *args]))
  return values


def test_unset_flags_keep_the_preset():
  assert study_flags.config_from_flags(parse()) == configs.study_fashion_mnist()


def test_flags_and_overrides_set_their_fields():
  config = study_flags.config_from_flags(parse(
      "--preset=study_tiny", "--label_fractions=0.1,1", "--seeds=4,5,6",
      "--pretrain_steps=9", "--override=efficient.frozen_steps=3",
      "--override=supervised.architecture=small", "--config.pixels.ks=2,4",
      "--config.pretrain.model.head.directions=down,up"))
  assert config.label_fractions == (0.1, 1.0) and config.seeds == (4, 5, 6)
  assert config.pretrain.train_steps == 9 and config.efficient.frozen_steps == 3
  assert config.supervised.architecture == "small" and config.pixels.ks == (2, 4)
  assert config.pretrain.model.head.directions == ("down", "up")


@pytest.mark.parametrize("args, match", [
    (["--seeds=a,b"], "comma-separated"),
    (["--override=efficient.nope=3"], "--override=efficient.nope=3: StudyConfig has no "
     "field 'efficient.nope'"),
    (["--override=efficient.frozen_steps=3.5"], "frozen_steps takes int; got '3.5'"),
    (["--pretrain_steps=4", "--config.pretrain.train_steps=5"],
     "--pretrain_steps sets pretrain.train_steps to 4 and --config.pretrain.train_steps=5 "
     "to 5: give one of them"),
    (["--preset=huge"], "Unknown study preset 'huge'"),
])
def test_bad_flags_are_clear_errors(args, match):
  with pytest.raises(ValueError, match=match):
    study_flags.config_from_flags(parse(*args))


def test_override_is_another_spelling_of_config_and_the_last_wins():
  config = study_flags.config_from_flags(parse(
      "--pretrain_steps=4", "--config.pretrain.train_steps=4",
      "--config.efficient.frozen_steps=3", "--override=efficient.frozen_steps=5"))
  assert config.pretrain.train_steps == 4 and config.efficient.frozen_steps == 5


def test_dataset_flags_rewrite_every_stage_and_the_other_flags_still_win():
  config = study_flags.config_from_flags(parse(
      "--preset=study_tiny", "--dataset=folder:/data/mine", "--image_size=40",
      "--label_fractions=0.2,1", "--override=efficient.subset.validation_fraction=0.3"))
  expected = configs.replace(
      study_data.for_dataset(configs.study_tiny(), "folder:/data/mine", 40),
      **{"label_fractions": (0.2, 1.0), "efficient.subset.validation_fraction": 0.3})
  assert config == expected
  assert config.pretrain.data.path == config.supervised.subset.data.path == "/data/mine"
  assert config.pretrain.model.grid.image_size == 40


def test_image_size_alone_keeps_the_presets_data():
  config = study_flags.config_from_flags(parse("--image_size=28"))
  base = configs.study_fashion_mnist()
  assert config.pretrain.data == base.pretrain.data and config.linear == base.linear
  assert config.pretrain.model.grid.image_size == config.efficient.image_size == 28
  assert config.pretrain.probe == base.pretrain.probe  # same data: the probe stays on


def test_a_tfds_dataset_takes_data_dir_and_test_split():
  config = study_flags.config_from_flags(parse(
      "--dataset=imagenet2012", "--data_dir=/tfds", "--test_split=validation"))
  assert (config.linear.data.source, config.linear.data.data_dir) == ("imagenet2012", "/tfds")
  assert config.efficient.subset.test_split == "validation"
  with pytest.raises(ValueError, match="test images would be training images"):
    study_flags.config_from_flags(parse("--dataset=cifar10", "--test_split=train"))


def run_binary(*args, status=0):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", "launch.study", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
  assert (proc.returncode == 0) == (status == 0), proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout if status == 0 else proc.stderr


def test_tiny_study_end_to_end_then_a_rerun_reads_every_stage_back(tmp_path):
  out = str(tmp_path / "study")
  # One fraction, two subset seeds: every stage kind and the mean ± std, in seconds.
  args = ["--preset=study_tiny", f"--output_dir={out}", "--label_fractions=1",
          "--seeds=0,1"]
  stdout = run_binary(*args)
  for name in ("study.md", "study.png", "study.json", "timings.json", "study_map.png"):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  text = open(os.path.join(out, "study.md")).read()
  for label in ("CPC v2 linear", "Random init linear", "CPC v2 (frozen)",
                "CPC v2 (fine-tuned)", "Supervised tiny", "Logistic regression on pixels",
                "kNN on pixels (cosine)"):
    assert f"| {label} |" in text, label
  assert "(n=2)" in text and "## Targets" in text and "## Training images" in text
  assert "## How each arm stopped" in text and "| linear/cpc |" in text
  assert "Top-1 accuracy" in stdout
  cells = json.load(open(os.path.join(out, "study.json")))["cells"]
  assert cells["CPC v2 (frozen)"]["100%"]["n"] == 2
  timings = json.load(open(os.path.join(out, "timings.json")))["stages"]
  assert len(timings) == 4 + 2 * 3  # pre-training, two linear runs, the map, 2 cells x 3

  mtimes = {p: os.path.getmtime(p) for p in _checkpoint_files(out)}
  stdout = run_binary(*args)
  assert stdout.count("done before, read back") == len(timings)
  assert "running" not in stdout
  assert {p: os.path.getmtime(p) for p in _checkpoint_files(out)} == mtimes  # no step redone
  assert json.load(open(os.path.join(out, "timings.json")))["stages"] == timings


def _checkpoint_files(root):
  return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
          if f.endswith(".index")]


# About 90 s on the shared 2-core machine (five stages, each building its models);
# the default suite keeps the flag tests above and the refusal below.
@pytest.mark.slow
def test_tiny_study_on_an_image_folder_tests_on_its_held_out_images(tmp_path):
  root = make_folder(tmp_path / "images", {"train": 16, "test": 4})
  out = str(tmp_path / "study")
  stdout = run_binary("--preset=study_tiny", f"--dataset=folder:{root}",
                      f"--output_dir={out}", "--label_fractions=1", "--seeds=0")
  assert ("[study] data: image folder " + root + ": 3 classes, 48 training images "
          "(16-16 per class), 12 test images (split_folders)") in stdout
  text = open(os.path.join(out, "study.md")).read()
  for label in ("CPC v2 linear", "Random init linear", "CPC v2 (fine-tuned)",
                "Supervised tiny"):
    assert f"| {label} |" in text, label
  for stage in ("linear/cpc", "efficient/100%-seed0", "supervised/100%-seed0"):
    doc = results.read_results(os.path.join(out, stage))
    assert doc["test"] == {"split": "test", "layout": "split_folders", "num_examples": 12}
  pretrain = json.load(open(os.path.join(out, "pretrain", "config.json")))
  assert pretrain["data"]["source"] == "folder" and pretrain["data"]["split"] == "train"


def test_a_folder_the_study_cannot_use_is_refused_before_any_stage(tmp_path):
  make_folder(tmp_path / "images", {None: 20}, size=12)
  out = tmp_path / "study"
  stderr = run_binary("--preset=study_tiny", f"--dataset=folder:{tmp_path / 'images'}",
                      f"--output_dir={out}", status=1)
  lines = [line for line in stderr.splitlines() if line.startswith("Error:")]
  assert len(lines) == 1 and "too small for the patch grid" in lines[0]
  assert not os.path.exists(out / "config.json")
