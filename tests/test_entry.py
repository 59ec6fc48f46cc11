"""launch/entry.py: one table from exceptions to exit codes and lines, for every binary;
SIGTERM, Ctrl-C and a non-finite loss in an evaluation binary end as in pre-training."""

import os
import signal

import pytest

from cpc_tf import records, stop
from cpc_tf.data import DataError
from cpc_tf.embed import EmbedError
from cpc_tf.eval.embedding_map import MapError
from cpc_tf.eval.features import CacheError
from cpc_tf.eval.report import ReportError
from launch import entry
from test_pretrain_binary import Background, catches, checkpoint_step

RESUME = "Rerun the same command to continue."

# (raised, status, printed line, stream): every row of entry.EXITS, and each
# subclass the binaries raise.
CASES = [
    (stop.Stopped(f"SIGTERM stopped the run at step 3; checkpoint saved. {RESUME}", 143),
     143, f"SIGTERM stopped the run at step 3; checkpoint saved. {RESUME}", "out"),
    (stop.Stopped("SIGINT at step 2 of linear, checkpoint saved", 130),
     130, f"SIGINT at step 2 of linear, checkpoint saved. {RESUME}", "out"),
    (stop.Stopped("Preempted at step 5: checkpoint saved. Rerun the same command to "
                  "continue.", 143),
     143, "Preempted at step 5: checkpoint saved. Rerun the same command to continue.",
     "out"),
    (stop.Interrupted("Interrupted: stopped at step 1 of linear"),
     75, f"Interrupted: stopped at step 1 of linear. {RESUME}", "out"),
    (KeyboardInterrupt(), 130, entry.INTERRUPTED_OUTSIDE, "err"),
    (stop.NonFiniteLossError("The training loss became nan at step 2"),
     1, "Error: The training loss became nan at step 2", "err"),
    (ValueError("--batch_size=3: not a multiple of 2 replicas."),
     1, "Error: --batch_size=3: not a multiple of 2 replicas.", "err"),
    (FileNotFoundError("no checkpoint in /m"), 1, "Error: no checkpoint in /m", "err"),
    (records.WriteError("writing /o/results.json failed"),
     1, "Error: writing /o/results.json failed", "err"),
    (DataError("/d holds no images"), 1, "Error: /d holds no images", "err"),
    (ReportError("r.json: not a results file"), 1, "Error: r.json: not a results file",
     "err"),
    (MapError("2 points"), 1, "Error: 2 points", "err"),
    (CacheError("stale cache"), 1, "Error: stale cache", "err"),
    (EmbedError("refusing to overwrite"), 1, "Error: refusing to overwrite", "err"),
]


@pytest.mark.parametrize("error,status,line,stream", CASES,
                         ids=[type(c[0]).__name__ + str(i) for i, c in enumerate(CASES)])
@pytest.mark.parametrize("where", ["build_config", "run"])
def test_each_error_ends_the_binary_with_its_one_line_and_status(error, status, line,
                                                                 stream, where, capsys):
  def fail(*_):
    raise error

  main = entry.main(fail if where == "build_config" else lambda: "config",
                    fail if where == "run" else lambda config: None)
  with pytest.raises(SystemExit) as exit_info:
    main(["prog"])
  assert exit_info.value.code == status
  out, err = capsys.readouterr()
  assert (out if stream == "out" else err) == line + "\n"
  assert (err if stream == "out" else out) == ""


def test_every_row_of_the_table_is_covered():
  kinds = {k for row in entry.EXITS for k in row.kinds}
  assert kinds <= {k for c in CASES for k in type(c[0]).__mro__}


def test_other_errors_keep_their_traceback_and_the_run_gets_the_config(capsys):
  seen = []
  entry.main(lambda: "config", seen.append)(["prog"])
  assert seen == ["config"]

  def bug(config):
    raise KeyError(config)

  with pytest.raises(KeyError):
    entry.main(lambda: "config", bug)(["prog"])


def test_positional_arguments_are_a_usage_error():
  from absl import app
  with pytest.raises(app.UsageError, match=r"\['stray'\]; pass files"):
    entry.main(lambda: None, lambda c: None, usage_hint="; pass files")(["prog", "stray"])


# An evaluation binary with far more steps than any machine runs before the signal.
SUPERVISED = ["-m", "launch.supervised_baseline", "--preset=supervised_tiny",
              "--image_size=16", "--batch_per_replica=4", "--label_fraction=0.5",
              "--max_examples=80", "--validation_fraction=0.2", "--eval_every=1"]


def _supervised(out, *args):
  import sys
  return [sys.executable, *SUPERVISED, f"--output_dir={out}", *args]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
@pytest.mark.parametrize("signum", [  # SIGINT takes the same path: -m slow only
    signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_stops_an_evaluation_binary_after_saving(tmp_path, signum):
  """As launch/pretrain.py: a checkpoint at the step reached, 128 + the signal, one
  line saying how to resume, no traceback. Waits for a saved step and the handler."""
  out = str(tmp_path / "supervised")
  run_dir = os.path.join(out, "point-0", "supervised")
  with Background(_supervised(out, "--train_steps=100000")) as job:
    job.wait_for(lambda: os.path.isdir(run_dir) and checkpoint_step(run_dir)
                 and catches(job.proc.pid, signal.SIGTERM))
    job.proc.send_signal(signum)
    assert job.finish() == 128 + signum, job.text()[-3000:]
  text = job.text()
  assert f"{signal.Signals(signum).name} at step" in text and RESUME in text, text[-3000:]
  assert "Traceback" not in text
  assert checkpoint_step(run_dir) >= 1


def test_a_non_finite_loss_in_an_evaluation_binary_is_one_error_line(tmp_path):
  out = str(tmp_path / "supervised")
  with Background(_supervised(out, "--train_steps=20", "--learning_rate=1e30")) as job:
    assert job.finish() == 1, job.text()[-3000:]
  errors = [l for l in job.text().splitlines() if l.startswith("Error:")]
  assert len(errors) == 1 and "loss became nan" in errors[0], job.text()[-3000:]
  assert "Traceback" not in job.text()
