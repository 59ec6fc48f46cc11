"""launch/ablation.py: flags -> AblationConfig, and a tiny end-to-end run with resume."""

import csv
import os
import subprocess
import sys

import pytest
from absl import flags as absl_flags

from cpc_tf import configs
from flags import ablation as ablation_flags
from flags import config_flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse(*args):
  values = absl_flags.FlagValues()
  ablation_flags.define_flags(values)
  values(config_flags.rewrite(["prog", "--output_dir=/tmp/x", *args]))
  return values


def test_unset_flags_keep_the_preset():
  assert ablation_flags.config_from_flags(parse()) == configs.ablation_fashion_mnist()
  assert configs.ablation_fashion_mnist().presets == configs.LADDER_NAMES


def test_flags_override_their_fields_and_dataset_reaches_both_protocols():
  config = ablation_flags.config_from_flags(parse(
      "--preset=ablation_tiny", "--presets=tiny,cpc_v2_arxiv_v1", "--train_steps=7",
      "--linear_train_steps=5", "--dataset=folder:/data/images",
      "--override=model.encoder.name=small", "--override=model.head.directions=up",
      "--override=optimizer.learning_rate=0.01"))
  base = configs.ablation_tiny()
  assert config.presets == ("tiny", "cpc_v2_arxiv_v1")
  assert (config.train_steps, config.linear.train_steps) == (7, 5)
  assert (config.data.source, config.data.path) == ("folder", "/data/images")
  assert (config.linear.data.source, config.linear.data.path) == ("folder", "/data/images")
  assert config.overrides == base.overrides + (
      ("model.encoder.name", "small"), ("model.head.directions", ("up",)),
      ("optimizer.learning_rate", 0.01))


@pytest.mark.parametrize("args, match", [
    (["--presets=cpc_v1,nope"], "presets takes .*'nope' is not one of them"),
    (["--override=learning_rate"], "write PATH=VALUE"),
    (["--override=model.encoder.nme=small"], "the closest is model.encoder.name"),
    (["--override=optimizer.learning_rate=fast"], "takes float; got 'fast'"),
    (["--preset=figure3"], "Unknown ablation preset 'figure3'"),
])
def test_bad_flags_are_clear_errors(args, match):
  with pytest.raises(ValueError, match=match):
    ablation_flags.config_from_flags(parse(*args))


def run_binary(*args):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-m", "launch.ablation", *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout


@pytest.mark.slow
def test_tiny_ablation_end_to_end_and_resume(tmp_path):
  """Two rungs, 2 pre-training and 4 linear steps each; the rerun trains nothing."""
  out = str(tmp_path / "ablation")
  log = run_binary("--preset=ablation_tiny", f"--output_dir={out}")
  assert "[1/2] cpc_v1 (CPC v1): pre-training 2 steps" in log
  assert "[2/2] ladder_bu (+BU): linear evaluation" in log
  with open(os.path.join(out, "ablation.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [(r["preset"], r["label"], r["directions"]) for r in rows] == [
      ("cpc_v1", "CPC v1", "1"), ("ladder_bu", "+BU", "2")]
  assert all(0 <= float(r["top1"]) <= float(r["top5"]) <= 1 for r in rows)
  for preset in ("cpc_v1", "ladder_bu"):
    assert os.path.exists(os.path.join(out, preset, "pretrain", "ckpt-2.index"))
    assert os.path.exists(os.path.join(out, preset, "linear", "results.json"))
  with open(os.path.join(out, "ablation.png"), "rb") as f:
    assert f.read(4) == b"\x89PNG"
  log = run_binary("--preset=ablation_tiny", f"--output_dir={out}")
  assert "cpc_v1 (CPC v1): done earlier, skipped" in log and "pre-training" not in log
  assert "| ladder_bu | +BU | 2 |" in log
