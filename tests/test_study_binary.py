"""launch/study.py: flags -> StudyConfig, and a tiny end-to-end study that resumes."""

import json
import os
import subprocess
import sys

import pytest
from absl import flags as absl_flags

from cpc_tf import configs
from flags import study as study_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args):
  values = absl_flags.FlagValues()
  study_flags.define_flags(values)
  values(["prog", "--output_dir=/tmp/x", *args])
  return values


def test_unset_flags_keep_the_preset():
  assert study_flags.config_from_flags(parse()) == configs.study_fashion_mnist()


def test_flags_and_overrides_set_their_fields():
  config = study_flags.config_from_flags(parse(
      "--preset=study_tiny", "--label_fractions=0.1,1", "--seeds=4,5,6",
      "--pretrain_steps=9", "--override=efficient.frozen_steps=3",
      "--override=supervised.architecture=small"))
  assert config.label_fractions == (0.1, 1.0) and config.seeds == (4, 5, 6)
  assert config.pretrain.train_steps == 9 and config.efficient.frozen_steps == 3
  assert config.supervised.architecture == "small"


@pytest.mark.parametrize("args, match", [
    (["--seeds=a,b"], "comma-separated"),
    (["--override=efficient.nope=3"], "override"),
    (["--preset=huge"], "Unknown study preset 'huge'"),
])
def test_bad_flags_are_clear_errors(args, match):
  with pytest.raises(ValueError, match=match):
    study_flags.config_from_flags(parse(*args))


def run_binary(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", "launch.study", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout


def test_tiny_study_end_to_end_then_a_rerun_reads_every_stage_back(tmp_path):
  out = str(tmp_path / "study")
  # One fraction, two subset seeds: every stage kind and the mean ± std, in seconds.
  args = ["--preset=study_tiny", f"--output_dir={out}", "--label_fractions=1",
          "--seeds=0,1"]
  stdout = run_binary(*args)
  for name in ("study.md", "study.png", "study.json", "timings.json"):
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
  assert len(timings) == 3 + 2 * 3  # pre-training, two linear runs, 2 cells x 3

  mtimes = {p: os.path.getmtime(p) for p in _checkpoint_files(out)}
  stdout = run_binary(*args)
  assert stdout.count("done before, read back") == len(timings)
  assert "running" not in stdout
  assert {p: os.path.getmtime(p) for p in _checkpoint_files(out)} == mtimes  # no step redone
  assert json.load(open(os.path.join(out, "timings.json")))["stages"] == timings


def _checkpoint_files(root):
  return [os.path.join(d, f) for d, _, files in os.walk(root) for f in files
          if f.endswith(".index")]
