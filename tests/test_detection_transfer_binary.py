"""launch/detection_transfer.py end to end on the synthetic set: phases, resume, results."""

import json
import os

import pytest

from test_linear_eval_binary import run_binary, saved_step

ARGS = ["--preset=detection_tiny"]


def check_results(out):
  with open(os.path.join(out, "results.json")) as f:
    doc = json.load(f)
  assert doc["protocol"] == "detection" and doc["dataset"] == "synthetic"
  assert doc["encoder"] == "random:detection_small"
  assert [(r["method"], r["split"]) for r in doc["rows"]] == [
      ("Random init detection_small (frozen)", "validation"),
      ("Random init detection_small (fine-tuned)", "validation"),
      ("Random init detection_small (fine-tuned)", "test")]
  test = doc["rows"][-1]
  assert sorted(test["ap"]) == ["ellipse", "rectangle", "triangle"]
  assert test["num_train_examples"] == 32
  assert test["map"] is None or 0.0 <= test["map"] <= 1.0
  return doc


def test_detection_transfer_end_to_end(tmp_path):
  out = str(tmp_path / "det")
  log = run_binary("launch.detection_transfer", *ARGS, f"--output_dir={out}")
  assert "detection_frozen (point 0) step 2/2" in log
  assert "detection_finetune (point 0) step 2/2" in log and "validation map" in log
  assert "test: mAP@0.5" in log and "Random init detection_small (fine-tuned)" in log
  check_results(out)
  for phase in ("frozen", "finetune"):
    assert os.path.exists(os.path.join(out, phase, "done.json"))
    assert os.path.exists(os.path.join(out, phase, "best", "ckpt.index"))


@pytest.mark.slow
def test_detection_transfer_resumes_after_an_interruption(tmp_path):
  out = str(tmp_path / "det")
  args = [*ARGS, "--finetune_steps=4", f"--output_dir={out}"]
  # Phase 1 (2 steps) finishes, phase 2 stops at its step 1.
  log = run_binary("launch.detection_transfer", *args, "--stop_after_steps=3", expect=75)
  assert "Interrupted: stopped at step 1 of detection_finetune" in log
  assert os.path.exists(os.path.join(out, "frozen", "done.json"))
  assert saved_step(os.path.join(out, "finetune")) == 1
  assert not os.path.exists(os.path.join(out, "results.json"))
  log = run_binary("launch.detection_transfer", *args)
  assert "detection_frozen (point 0) step" not in log  # done: only restored
  assert "detection_finetune (point 0): resuming at step 1 of 4" in log
  assert saved_step(os.path.join(out, "finetune")) == 4
  first = check_results(out)
  # A finished run reruns without training and writes the same results.
  log = run_binary("launch.detection_transfer", *args)
  assert "step 4/4" not in log and "test: mAP@0.5" in log
  assert check_results(out) == first


def test_bad_input_exits_with_one_line(tmp_path):
  out = str(tmp_path / "det")
  log = run_binary("launch.detection_transfer", *ARGS, "--dataset=fashion_mnist",
                   f"--output_dir={out}", expect=1)
  assert "Error: fashion_mnist has no boxes" in log
  log = run_binary("launch.detection_transfer", *ARGS, "--backbone=pretrained",
                   f"--output_dir={out}", expect=1)
  assert "Error: backbone='pretrained' needs --model_dir" in log
