"""benchmarks/inference_bench.py: a tiny run prints both passes, both modes."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*args):
  return subprocess.run([sys.executable, "benchmarks/inference_bench.py", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=600)


def test_prints_rates_speed_up_and_difference_for_both_passes():
  proc = run("--preset=tiny", "--batch=2", "--image_size=16", "--rounds=1", "--seconds=0.05")
  assert proc.returncode == 0, proc.stderr[-3000:]
  rows = re.findall(r"^\| (grid_means|counts) \| ([\d.]+) .* \| ([\d.]+) .* \| x([\d.]+) \| "
                    r"([\d.e+-]+) \|$", proc.stdout, re.M)
  assert [r[0] for r in rows] == ["grid_means", "counts"], proc.stdout
  for _, plain, xla, speed_up, diff in rows:
    assert float(plain) > 0 and float(xla) > 0
    assert abs(float(speed_up) - float(xla) / float(plain)) < 0.01 + 0.01 * float(speed_up)
    assert float(diff) < 1e-4  # float32 rounding, not another function


def test_refuses_an_unknown_preset_and_a_bad_budget():
  proc = run("--preset=nope")
  assert proc.returncode != 0 and "Unknown preset 'nope'" in proc.stderr
  proc = run("--rounds=0")
  assert proc.returncode == 2 and "--rounds must be >= 1" in proc.stderr
