"""launch/efficient_classification.py end to end on Fashion-MNIST; resume; bad input."""

import csv
import json
import os

import pytest
from absl import flags

from cpc_tf import configs
from cpc_tf.eval import efficient
from flags import evaluation
from test_encoders import pretrained_model_dir
from test_held_out import check_held_out, make_folder
from test_linear_eval_binary import run_binary, saved_step

BINARY = "launch.efficient_classification"
# 64 training images, 16 px inputs (a 4x4 grid from the tiny encoder).
SMALL = ["--preset=efficient_tiny", "--max_examples=80", "--validation_fraction=0.2",
         "--image_size=16", "--batch_per_replica=4", "--frozen_steps=2",
         "--finetune_steps=2", "--eval_every=1", "--label_fraction=0.5"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return pretrained_model_dir(tmp_path_factory)


def check_outputs(out, model_dir, sweep_points):
  with open(os.path.join(out, "results.json")) as f:
    doc = json.load(f)
  assert doc["protocol"] == "efficient" and doc["encoder"] == model_dir
  assert doc["config"]["subset"]["label_fraction"] == 0.5
  methods = [(r["method"], r["split"]) for r in doc["rows"]]
  assert methods == [("CPC v2 (frozen)", "validation"), ("CPC v2 (frozen)", "test"),
                     ("CPC v2 (fine-tuned)", "validation"), ("CPC v2 (fine-tuned)", "test")]
  with open(os.path.join(out, "subset.json")) as f:
    subset = json.load(f)
  assert len(subset["validation_ids"]) == 16 and len(subset["train_ids"]) == 32
  assert all(r["num_train_examples"] == 32 for r in doc["rows"])
  with open(os.path.join(out, "sweep.csv")) as f:
    rows = list(csv.DictReader(f))
  assert [int(r["point"]) for r in rows] == list(range(sweep_points))
  # Only the best sweep point's checkpoints are kept.
  assert len([d for d in os.listdir(out) if d.startswith("point-")]) == 1
  return doc


def test_end_to_end_with_a_sweep(model_dir, tmp_path):
  out = str(tmp_path / "efficient")
  log = run_binary(BINARY, *SMALL, "--sweep_size=2", f"--model_dir={model_dir}",
                   f"--output_dir={out}")
  assert "sweep point 2/2" in log and "best sweep point" in log
  assert "CPC v2 (fine-tuned)" in log
  check_outputs(out, model_dir, 2)


@pytest.mark.slow
def test_resumes_after_an_interruption_and_reuses_the_subset(model_dir, tmp_path):
  out = str(tmp_path / "efficient")
  args = [*SMALL, f"--model_dir={model_dir}", f"--output_dir={out}"]
  log = run_binary(BINARY, *args, "--stop_after_steps=3", expect=75)
  assert "Interrupted: stopped at step 1 of finetune (point 0)" in log
  # The budget of 3 steps: phase 1 (2 steps) finished, phase 2 saved at step 1.
  point = os.path.join(out, "point-0")
  assert os.path.exists(os.path.join(point, "frozen", "done.json"))
  assert saved_step(os.path.join(point, "finetune")) == 1
  assert not os.path.exists(os.path.join(point, "finetune", "done.json"))
  with open(os.path.join(out, "subset.json")) as f:
    subset = f.read()
  frozen = os.path.getmtime(os.path.join(point, "frozen", "done.json"))
  log = run_binary(BINARY, *args)
  assert "frozen (point 0)" not in log  # phase 1 finished: not retrained
  assert os.path.getmtime(os.path.join(point, "frozen", "done.json")) == frozen
  assert "finetune (point 0): resuming at step 1 of 2" in log
  assert saved_step(os.path.join(point, "finetune")) == 2
  check_outputs(out, model_dir, 1)
  # The subset file repeats the run exactly elsewhere.
  other = str(tmp_path / "again")
  run_binary(BINARY, *SMALL, f"--model_dir={model_dir}", f"--output_dir={other}",
             f"--subset_file={os.path.join(out, 'subset.json')}", "--finetune=false")
  with open(os.path.join(other, "subset.json")) as f:
    assert f.read() == subset


def test_bad_model_dir_is_reported(tmp_path):
  """The binary prints these messages after "Error: " and exits with status 1."""
  empty = tmp_path / "pretrain"
  empty.mkdir()
  config = configs.efficient_tiny()
  with pytest.raises(FileNotFoundError, match=f"{empty}/config.json not found.*"
                     "launch/pretrain.py"):
    efficient.train_efficient(str(empty), config, str(tmp_path / "out"))
  with pytest.raises(FileNotFoundError, match="does not exist"):
    efficient.train_efficient(str(tmp_path / "typo"), config, str(tmp_path / "out"))


@pytest.mark.parametrize("fraction", ["0", "1.5"])
def test_bad_label_fraction_names_the_value_and_the_fix(fraction):
  fv = flags.FlagValues()
  evaluation.define_flags("efficient", fv)
  fv(["prog", "--model_dir=m", "--output_dir=o", f"--label_fraction={fraction}"])
  with pytest.raises(ValueError, match=rf"label_fraction={float(fraction)}: must lie in "
                     r"\(0, 1\], e.g. 0.01"):
    evaluation.config_from_flags("efficient", fv)


def test_flags_build_the_config():
  fv = flags.FlagValues()
  evaluation.define_flags("efficient", fv, argv=["--preset", "efficient_paper"])
  fv(["prog", "--model_dir=m", "--output_dir=o", "--preset=efficient_paper",
      "--label_fraction=0.01", "--sweep_size=4", "--dataset=imagenet2012",
      "--data_dir=/data", "--classifier_blocks=3", "--weight_decay_mode=decoupled"])
  config = evaluation.config_from_flags("efficient", fv)
  assert config.weight_decay_mode == "decoupled" and fv["weight_decay_mode"].default == "l2"
  assert config.subset.label_fraction == 0.01 and config.sweep.size == 4
  assert config.subset.data.source == "imagenet2012" and config.subset.data.data_dir == "/data"
  assert config.classifier == configs.ClassifierConfig(blocks=3)
  # supp. C defaults, read from the preset named on the command line (issue 9: --help
  # showed the dataclass fields whatever the preset).
  assert fv["learning_rate"].default == 0.1 and fv["classifier_width"].default == 4096
  assert fv["validation_size"].default == 10_000 and fv["momentum"].default == 0.9


def test_phase_two_encoder_adam_takes_the_pretraining_betas_unless_set():
  pretraining = configs.OptimizerConfig()
  adam = efficient.encoder_adam(configs.efficient_paper())
  assert (adam.beta_1, adam.beta_2, adam.epsilon) == (
      pretraining.beta_1, pretraining.beta_2, pretraining.epsilon) == (0.8, 0.999, 1e-8)
  assert float(adam.learning_rate) == pytest.approx(4e-5)
  own = configs.replace(configs.efficient_tiny(), encoder_learning_rate=1e-3,
                        encoder_beta_1=0.9, encoder_beta_2=0.99, encoder_epsilon=1e-7)
  adam = efficient.encoder_adam(own)
  assert (adam.beta_1, adam.beta_2, adam.epsilon) == (0.9, 0.99, 1e-7)
  assert float(adam.learning_rate) == pytest.approx(1e-3)
  with pytest.raises(ValueError, match="encoder_beta_1=1.0.*betas in \\[0, 1\\)"):
    configs.EfficientConfig(encoder_beta_1=1.0)
  fv = flags.FlagValues()
  evaluation.define_flags("efficient", fv)
  fv(["prog", "--model_dir=m", "--output_dir=o", "--encoder_beta_1=0.9",
      "--encoder_epsilon=1e-7"])
  config = evaluation.config_from_flags("efficient", fv)
  assert (config.encoder_beta_1, config.encoder_beta_2, config.encoder_epsilon) == (
      0.9, 0.999, 1e-7)
  assert fv["encoder_beta_1"].default == 0.8 and "supp. A" in fv["encoder_beta_1"].help


@pytest.mark.slow
def test_exported_savedmodel_end_to_end(model_dir, tmp_path):
  from test_export import export_run
  export_dir = str(tmp_path / "export")
  export_run(model_dir, export_dir)
  out = str(tmp_path / "efficient")
  log = run_binary(BINARY, *SMALL, f"--model_dir={export_dir}", f"--output_dir={out}")
  assert "CPC v2 (fine-tuned)" in log
  check_outputs(out, export_dir, 1)


def test_image_folder_with_a_test_path_is_tested_on_it_only(model_dir, tmp_path):
  """Issue 9: --test_path names the test folder; validation is carved from train."""
  folder = make_folder(tmp_path / "images", per_class=8)
  tests = make_folder(tmp_path / "tests", per_class=2, seed=1)
  out = str(tmp_path / "efficient")
  log = run_binary(BINARY, "--preset=efficient_tiny", "--validation_fraction=0.25",
                   "--image_size=16", "--batch_per_replica=4", "--frozen_steps=1",
                   "--nofinetune", "--eval_every=1", "--label_fraction=0.5",
                   f"--model_dir={model_dir}", f"--dataset=folder:{folder}",
                   f"--test_path={tests}", f"--output_dir={out}")
  assert "on 6 images (test split)" in log
  with open(os.path.join(out, "subset.json")) as f:
    subset = json.load(f)
  splits = check_held_out(out, "test_path",
                          trained_ids=subset["train_ids"] + subset["validation_ids"])
  assert splits["roots"]["test"] == tests and len(splits["ids"]["train"]) == 24
  assert not set(subset["train_ids"]) & set(subset["validation_ids"])


def test_a_supervised_baseline_is_named_as_such(tmp_path_factory, tmp_path):
  """Its output_dir as --model_dir (cpc_tf.eval.encoders): rows "Supervised <arch> (...)"."""
  from test_encoders import supervised_output_dir
  source = supervised_output_dir(tmp_path_factory)
  config = configs.replace(configs.efficient_tiny(), frozen_steps=1, eval_every=1,
                           finetune=False)
  doc = efficient.train_efficient(source, config, str(tmp_path / "e"), verbose=False)
  assert doc["encoder"] == f"supervised:{source}"
  assert [(r["method"], r["split"]) for r in doc["rows"]] == [
      ("Supervised detection_small (frozen)", "validation"),
      ("Supervised detection_small (frozen)", "test")]
