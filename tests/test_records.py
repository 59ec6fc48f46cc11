"""cpc_tf.records: the atomic writer, JSON errors that name the file, writable checks."""

import json
import os
import subprocess
import sys

import pytest

from cpc_tf import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_write_json_replaces_whole_files_and_leaves_no_temporary(tmp_path):
  path = str(tmp_path / "sub" / "a.json")
  records.write_json(path, {"b": 1, "a": [1, 2]})
  records.write_json(path, {"c": 3})
  assert json.load(open(path)) == {"c": 3}
  assert os.listdir(tmp_path / "sub") == ["a.json"]


def test_a_failed_write_keeps_the_previous_file_and_names_it(tmp_path):
  path = tmp_path / "config.json"
  records.write_json(str(path), {"a": 1})
  os.mkdir(str(path) + ".tmp")  # the temporary cannot be created: the write fails
  with pytest.raises(records.WriteError) as error:
    records.write_json(str(path), {"a": 2})
  assert str(path) in str(error.value) and "untouched" in str(error.value)
  assert json.load(open(path)) == {"a": 1}


def test_read_json_names_the_damaged_file_and_the_way_out(tmp_path):
  path = tmp_path / "config.json"
  path.write_text('{"a": 1,')
  with pytest.raises(ValueError, match=rf"{path} is damaged .*not valid JSON.*Move it"):
    records.read_json(str(path), "Move it aside.")


def test_check_writable_leaves_no_trace(tmp_path):
  """A run refused after the check (bad flags) must not leave an output directory."""
  records.check_writable(str(tmp_path / "a" / "b"), "--output_dir")
  assert not (tmp_path / "a").exists()
  (tmp_path / "c").mkdir()
  records.check_writable(str(tmp_path / "c"), "--output_dir")
  assert os.listdir(tmp_path / "c") == []  # an existing directory stays, probe removed


def test_a_directory_under_a_regular_file_is_refused(tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match=r"--output_dir=.*file/run lies under .*file, which "
                                       "is a regular file"):
    records.check_writable(str(tmp_path / "file" / "run"), "--output_dir")


@pytest.mark.skipif(not os.path.isdir("/sys/kernel"), reason="needs sysfs")
def test_a_directory_that_cannot_be_written_is_refused():
  # sysfs refuses new entries even to root, unlike a chmod-ed directory.
  with pytest.raises(ValueError, match=r"--model_dir=/sys/cpc-tf-test is not writable"):
    records.check_writable("/sys/cpc-tf-test", "--model_dir")


# (module, its output flag, the other arguments it needs). Every binary goes through the
# same check (launch/entry.py); three run in the default suite, the rest under -m slow.
BINARIES = [
    ("launch.pretrain", "--model_dir", ["--preset=tiny"]),
    ("launch.linear_eval", "--output_dir", ["--model_dir=/nonexistent"]),
    ("launch.ablation", "--output_dir", []),
]
SLOW_BINARIES = [
    ("launch.efficient_classification", "--output_dir", ["--model_dir=/nonexistent"]),
    ("launch.supervised_baseline", "--output_dir", []),
    ("launch.learning_dynamics", "--output_dir", ["--model_dir=/nonexistent"]),
    ("launch.extract_features", "--output_dir", ["--model_dir=/nonexistent"]),
    ("launch.export", "--export_dir", ["--model_dir=/nonexistent"]),
    ("launch.report", "--output_dir", ["--results=/nonexistent/results.json"]),
    ("launch.embed", "--output_dir", ["--model_dir=/nonexistent", "--dataset=fashion_mnist"]),
]


@pytest.mark.parametrize("module, flag, args", [
    *(pytest.param(*b, id=b[0]) for b in BINARIES),
    *(pytest.param(*b, id=b[0], marks=pytest.mark.slow) for b in SLOW_BINARIES)])
def test_every_binary_refuses_an_unwritable_directory_at_start(tmp_path, module, flag,
                                                               args):
  (tmp_path / "file").write_text("x")
  target = tmp_path / "file" / "out"
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-m", module, f"{flag}={target}", *args],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 1, proc.stderr[-3000:]
  lines = [l for l in proc.stderr.splitlines() if l.startswith("Error:")]
  assert lines == [f"Error: {flag}={target} lies under {tmp_path / 'file'}, which is a "
                   f"regular file, not a directory: choose another {flag}, or move that "
                   "file away."], proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr
