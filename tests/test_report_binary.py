"""launch/report.py end to end: files in, printed tables and report.md / .png out."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(*args):
  return subprocess.run([sys.executable, "-m", "launch.report", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=300)


def test_report_binary_prints_and_writes(tmp_path):
  run = tmp_path / "efficient"
  run.mkdir()
  (run / "results.json").write_text(json.dumps({
      "protocol": "efficient", "dataset": "fashion_mnist", "encoder": "tiny", "config": {},
      "rows": [{"method": "CPC v2 (fixed)", "label_fraction": f, "top1": 0.5, "top5": 0.9,
                "split": "test", "num_train_examples": 10} for f in (0.01, 1.0)]}))
  out = tmp_path / "report"
  result = _run(f"--results={run}", f"--output_dir={out}", "--paper")
  assert result.returncode == 0, result.stderr
  assert "| CPC v2 (fixed) | 50.0 | - | - | - | - | - | 50.0 |" in result.stdout
  assert "(paper)" in result.stdout
  assert f"Wrote {out / 'report.png'}" in result.stdout
  assert (out / "report.md").exists() and (out / "report.png").stat().st_size > 0


def test_report_binary_bad_file_exits_with_its_name(tmp_path):
  bad = tmp_path / "bad.json"
  bad.write_text("[]")
  result = _run(f"--results={bad}", f"--output_dir={tmp_path / 'out'}")
  assert result.returncode == 1
  assert f"Error: {bad}: not a results file" in result.stderr


def _results(run, method, top1):
  run.mkdir()
  (run / "results.json").write_text(json.dumps({
      "protocol": "efficient", "dataset": "mine", "encoder": str(run), "config": {},
      "rows": [{"method": method, "label_fraction": 1.0, "top1": top1, "top5": 0.9,
                "split": "test", "num_train_examples": 10}]}))


@pytest.mark.slow  # over 14 s here: kept out of the 15-minute default suite
def test_rename_tells_two_runs_of_one_method_apart(tmp_path):
  """Issue 9: the report asked to rename methods but no flag could."""
  for name, top1 in (("a", 0.5), ("b", 0.25)):
    _run_dir = tmp_path / name
    _results(_run_dir, "CPC v2 (frozen)", top1)
  args = [f"--results={tmp_path / 'a'}", f"--results={tmp_path / 'b'}",
          f"--output_dir={tmp_path / 'out'}"]
  clash = _run(*args)
  assert clash.returncode == 1 and "--rename=" in clash.stderr
  result = _run(*args, f"--rename=CPC v2 (frozen)=CPC v2 wd 1e-4@{tmp_path / 'b'}")
  assert result.returncode == 0, result.stderr
  assert "| CPC v2 (frozen) | 50.0 |" in result.stdout
  assert "| CPC v2 wd 1e-4 | 25.0 |" in result.stdout
  typo = _run(*args, "--rename=CPC v3=x")
  assert typo.returncode == 1
  assert "--rename=CPC v3=x matches no row; the methods are: CPC v2 (frozen)" in (
      typo.stderr)
  bad = _run(*args, "--rename=no equals sign")
  assert bad.returncode == 1 and "expected 'OLD=NEW' or 'OLD=NEW@PATH'" in bad.stderr


def test_report_binary_makes_a_detection_table(tmp_path):
  path = tmp_path / "results.json"
  path.write_text(json.dumps({
      "protocol": "detection", "dataset": "voc/2007", "encoder": "/runs/cpc", "config": {},
      "rows": [{"method": "CPC v2 resnet161 (fine-tuned)", "split": "test",
                "num_train_examples": 5011, "map": 0.701, "ap": {"dog": 0.75}}]}))
  out = tmp_path / "report"
  result = _run(f"--results={path}", f"--output_dir={out}", "--paper")
  assert result.returncode == 0, result.stderr
  assert "| CPC v2 resnet161 (fine-tuned) | /runs/cpc | voc/2007 | 70.1 |" in result.stdout
  assert "| Faster R-CNN on CPC v2, ResNet-101, fine-tuned (paper) | - | voc/2007 | 70.6 |" \
      in result.stdout
  assert f"Wrote {out / 'report.md'}" in result.stdout and "report.png" not in result.stdout
