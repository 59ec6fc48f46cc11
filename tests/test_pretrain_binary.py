"""launch/pretrain.py end to end: a tiny run, resume, SIGTERM, SIGKILL, refused set-ups."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import tensorflow as tf

from cpc_tf import checkpoints, configs, flops
from flags import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def command(model_dir, *args):
  return [sys.executable, "-m", "launch.pretrain", "--preset=tiny",
          f"--model_dir={model_dir}", *args]


def run(args, timeout=600):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=timeout)


class Background:
  """A binary run in the background, its stdout collected by a thread.

  Use as a context manager: a run still going when the test fails is killed.
  """

  def __init__(self, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    self.output = []
    self._thread = threading.Thread(target=self._read, daemon=True)
    self._thread.start()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    if self.proc.poll() is None:
      self.proc.kill()
      self.proc.wait()
    return False

  def _read(self):
    for chunk in iter(lambda: self.proc.stdout.read(1), ""):
      self.output.append(chunk)

  def text(self):
    return "".join(self.output)

  def wait_for(self, predicate, timeout=600):
    """Polls predicate (state the run writes, never its printed text) until it
    holds; the timeout only guards against a hung run."""
    deadline = time.time() + timeout
    while time.time() < deadline:
      if predicate():
        return
      if self.proc.poll() is not None:
        raise AssertionError(f"exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
      time.sleep(0.2)
    self.proc.kill()
    raise AssertionError(f"timed out:\n{self.text()[-3000:]}")

  def finish(self, timeout=600):
    try:
      self.proc.wait(timeout)
    except subprocess.TimeoutExpired:
      self.proc.kill()
      raise
    self._thread.join(10)
    return self.proc.returncode


def catches(pid, signum):
  """Whether process pid has a handler installed for signum (Linux: the SigCgt
  mask of /proc/<pid>/status, bit signum - 1)."""
  with open(f"/proc/{pid}/status") as f:
    for line in f:
      if line.startswith("SigCgt:"):
        return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
  raise AssertionError(f"no SigCgt line in /proc/{pid}/status")


def checkpoint_step(model_dir):
  """The step of the latest complete checkpoint in model_dir (None: none yet).

  tf.train.latest_checkpoint reads the `checkpoint` state file, which the
  CheckpointManager rewrites atomically after the ckpt-N files are complete.
  """
  latest = tf.train.latest_checkpoint(model_dir)
  return None if latest is None else int(latest.rsplit("-", 1)[1])


def saved_step(model_dir):
  """The `step` variable stored in the latest checkpoint, read back."""
  reader = tf.train.load_checkpoint(model_dir)
  return int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))


# Runs that a test interrupts get far more steps than any machine can run
# before the signal; they end by the signal, never by the step count.
LONG = "--train_steps=10000"


def test_tiny_run_writes_everything_and_a_second_invocation_resumes(tmp_path):
  model_dir = str(tmp_path)
  proc = run(command(model_dir))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert "Starting step 0 of 4" in proc.stdout
  step_flops = flops.pretrain_cost(configs.tiny()).train
  assert f"Cost: {step_flops:.3g} FLOP per step" in proc.stdout  # issue 13
  assert f"{4 * step_flops:.3g} FLOP for the 4 steps to run" in proc.stdout
  assert "Projected: " in proc.stdout
  assert "Done: step 4" in proc.stdout
  with open(os.path.join(model_dir, "config.json")) as f:
    assert configs.from_dict(configs.PretrainConfig, json.load(f)) == configs.tiny()
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")
  assert tf.io.gfile.glob(os.path.join(model_dir, "events.out.tfevents.*"))

  proc = run(command(model_dir, "--train_steps=6"))
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  assert "Resuming at step 4 of 6" in proc.stdout
  assert "Done: step 6" in proc.stdout
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-6")
  # The settings are written once; the longer schedule is appended with its step.
  with open(os.path.join(model_dir, "config.json")) as f:
    assert configs.from_dict(configs.PretrainConfig, json.load(f)) == configs.tiny()
  with open(os.path.join(model_dir, checkpoints.CHANGES_FILE)) as f:
    assert json.load(f) == [{"step": 4, "changes": {"train_steps": {"from": 4, "to": 6}}}]


@pytest.mark.slow  # over 14 s here: kept out of the 15-minute default suite
def test_resuming_with_another_learning_rate_or_batch_is_refused(tmp_path):
  """Issue 9: they were accepted silently and overwrote the record of the first ones."""
  model_dir = str(tmp_path)
  proc = run(command(model_dir, "--train_steps=2"))
  assert proc.returncode == 0, proc.stderr[-3000:]
  with open(os.path.join(model_dir, "config.json")) as f:
    before = f.read()
  proc = run(command(model_dir, "--train_steps=4", "--learning_rate=0.1", "--batch_size=8"))
  assert proc.returncode == 1
  assert "optimizer.learning_rate: saved 0.001, now 0.1" in proc.stderr, proc.stderr[-3000:]
  assert "batch_size: saved 4, now 8" in proc.stderr
  assert "Traceback" not in proc.stderr
  with open(os.path.join(model_dir, "config.json")) as f:
    assert f.read() == before
  assert checkpoint_step(model_dir) == 2


@pytest.mark.slow  # over 14 s here: kept out of the 15-minute default suite
def test_a_truncated_config_is_named_and_the_way_out_recovers_the_run(tmp_path):
  model_dir = str(tmp_path)
  assert run(command(model_dir, "--train_steps=2")).returncode == 0
  path = os.path.join(model_dir, "config.json")
  with open(path) as f:
    text = f.read()
  with open(path, "w") as f:
    f.write(text[:1024])  # as a full disk left it under the old writer (issue 9)
  proc = run(command(model_dir, "--train_steps=4"))
  assert proc.returncode == 1
  errors = [l for l in proc.stderr.splitlines() if l.startswith("Error:")]
  assert len(errors) == 1 and path in errors[0], proc.stderr[-3000:]
  assert f"mv {path} {path}.damaged" in errors[0] and "--train_steps=2" in errors[0]
  os.rename(path, path + ".damaged")  # the way out the message gives
  proc = run(command(model_dir, "--train_steps=2"))
  assert proc.returncode == 0 and "Resuming at step 2 of 2" in proc.stdout, proc.stderr
  assert checkpoint_step(model_dir) == 2


def test_a_write_failing_mid_run_is_one_error_line_and_keeps_the_last_checkpoint(tmp_path):
  """A regular file where the step-8 checkpoint's temporary directory goes makes that
  save fail after ckpt-4 was written, as a full disk would."""
  model_dir = str(tmp_path)
  open(os.path.join(model_dir, "ckpt-8_temp"), "w").close()
  proc = run(command(model_dir, "--train_steps=8", "--checkpoint_every=4"))
  assert proc.returncode == 1
  errors = [l for l in proc.stderr.splitlines() if l.startswith("Error:")]
  assert len(errors) == 1, proc.stderr[-3000:]
  assert errors[0].startswith(f"Error: saving the checkpoint of step 8 in {model_dir} "
                              "failed (")
  assert "Not a directory" in errors[0] and "ckpt-4 is intact" in errors[0]
  assert "Traceback" not in proc.stderr
  assert checkpoint_step(model_dir) == 4


@pytest.mark.slow  # over 14 s here: kept out of the 15-minute default suite
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_ctrl_c_saves_a_checkpoint_like_sigterm(tmp_path):
  """SIGINT once the loop runs: a checkpoint at the step reached, status 130
  (128 + SIGINT, as SIGTERM gives 143), no KeyboardInterrupt traceback.

  Synchronises on the SIGTERM handler, installed after the SIGINT one.
  """
  model_dir = str(tmp_path)
  with Background(command(model_dir, LONG, "--checkpoint_every=10000")) as job:
    job.wait_for(lambda: catches(job.proc.pid, signal.SIGTERM))
    job.proc.send_signal(signal.SIGINT)
    assert job.finish() == 128 + signal.SIGINT, job.text()[-3000:]
  step = checkpoint_step(model_dir)
  assert step is not None and 1 <= step < 10000, job.text()[-3000:]
  assert saved_step(model_dir) == step
  assert f"Preempted at step {step}: checkpoint saved." in job.text()
  assert "Traceback" not in job.text() and "KeyboardInterrupt" not in job.text()


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
def test_sigterm_saves_a_checkpoint_before_exit(tmp_path):
  """SIGTERM once the loop runs: a checkpoint at the step reached, status 143.

  The test waits until the process has installed its SIGTERM handler (the
  training loop installs it on entry; before that SIGTERM kills the process
  as usual). --checkpoint_every=10000 means no scheduled save can happen, so
  the one checkpoint found afterwards is the preemption save.
  """
  model_dir = str(tmp_path)
  with Background(command(model_dir, LONG, "--checkpoint_every=10000")) as job:
    job.wait_for(lambda: catches(job.proc.pid, signal.SIGTERM))
    assert checkpoint_step(model_dir) is None
    job.proc.send_signal(signal.SIGTERM)
    assert job.finish() == 128 + signal.SIGTERM, job.text()[-3000:]
  step = checkpoint_step(model_dir)
  assert step is not None and 1 <= step < 10000, job.text()[-3000:]
  assert saved_step(model_dir) == step
  assert f"Preempted at step {step}: checkpoint saved." in job.text()
  names = os.listdir(model_dir)
  assert sorted(n for n in names if n.startswith("ckpt-") and n.endswith(".index")) == [
      f"ckpt-{step}.index"]


@pytest.mark.slow
def test_sigkill_then_restart_continues_from_the_last_checkpoint(tmp_path):
  """SIGKILL after the first checkpoint; the same command resumes from the last one.

  Synchronises on checkpoints appearing in model_dir (every 4 steps), and
  stops the resumed run by SIGTERM once it has saved past the resume point.
  """
  model_dir = str(tmp_path)
  args = command(model_dir, LONG, "--checkpoint_every=4")
  with Background(args) as job:
    job.wait_for(lambda: checkpoint_step(model_dir) is not None)
    job.proc.kill()
    assert job.finish() == -signal.SIGKILL
  saved = checkpoint_step(model_dir)  # read after the kill: nothing writes any more
  assert saved % 4 == 0 and 4 <= saved < 10000
  assert saved_step(model_dir) == saved

  with Background(args) as job:  # the same command, no flag changes
    job.wait_for(lambda: checkpoint_step(model_dir) > saved)
    job.proc.send_signal(signal.SIGTERM)
    assert job.finish() == 128 + signal.SIGTERM, job.text()[-3000:]
  assert f"Resuming at step {saved} of 10000" in job.text(), job.text()[-3000:]
  step = checkpoint_step(model_dir)
  assert saved + 4 <= step < 10000 and saved_step(model_dir) == step
  assert f"Preempted at step {step}: checkpoint saved." in job.text()


@pytest.mark.parametrize("args, message", [  # the slow ones: same path, -m slow only
    (["--preset=nope"], "Unknown preset 'nope'"),
    pytest.param(["--tpu=my-tpu"], "--tpu=my-tpu needs --strategy=tpu", marks=pytest.mark.slow),
    (["--strategy=multi_worker"], "TF_CONFIG"),
    pytest.param(["--batch_size=0"], "positive multiple", marks=pytest.mark.slow),
    (["--dataset=folder:"], "needs a path"),
    pytest.param(["--probe_every=2", "--probe_k=0"], "probe k=0", marks=pytest.mark.slow),
    # Offline, a TPU name cannot be resolved: one line instead of a 69-line URLError.
    (["--strategy=tpu", "--tpu=no-such-tpu-cpc"],
     "Error: --tpu=no-such-tpu-cpc: no such TPU could be reached"),
])
def test_bad_flags_are_refused_with_a_clear_message(tmp_path, args, message):
  env_args = command(str(tmp_path), *args)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  proc = subprocess.run(env_args, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode != 0
  assert message in proc.stderr, proc.stderr[-3000:]
  assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_a_probe_where_there_are_no_labels_is_one_error_line(tmp_path):
  images = tmp_path / "images"
  images.mkdir()
  for i in range(4):  # a flat folder: images to pre-train on, no class sub-folders
    tf.io.write_file(str(images / f"{i}.png"), tf.io.encode_png(tf.zeros([32, 32, 3], tf.uint8)))
  proc = run(command(str(tmp_path / "run"), f"--dataset=folder:{images}", "--probe_every=2"))
  assert proc.returncode != 0
  lines = [l for l in proc.stderr.splitlines() if l.startswith("Error:")]
  assert len(lines) == 1 and "The kNN probe cannot read the 'train' split" in lines[0], (
      proc.stderr[-3000:])
  assert "--probe_every=0" in lines[0] and "Traceback" not in proc.stderr
  assert not tf.io.gfile.glob(str(tmp_path / "run" / "ckpt-*"))  # refused before training


def test_help_lists_every_flag_with_its_default():
  proc = run([sys.executable, "-m", "launch.pretrain", "--help"])  # absl exits 1 here
  for name in ["model_dir", "strategy", "tpu", "preset", "dataset", "probe_source",
               *common.PRETRAIN_ALIASES]:
    assert f"--{name}" in proc.stdout or f"--[no]{name}" in proc.stdout, name
  assert "(default: 'fashion_mnist_small')" in proc.stdout
  assert "python -m launch.pretrain --preset=fashion_mnist_small" in proc.stdout


def test_another_architecture_in_model_dir_is_refused(tmp_path):
  other = configs.replace(configs.tiny(), **{"model.head.target_dim": 16})
  checkpoints.write_config(other, str(tmp_path))
  # Its checkpoint (only a started run's record binds the directory).
  saved = tf.train.Checkpoint(step=tf.Variable(2, dtype=tf.int64))
  tf.train.CheckpointManager(saved, str(tmp_path), 1).save(checkpoint_number=2)
  proc = run(command(str(tmp_path)))
  assert proc.returncode != 0
  assert "model.head.target_dim: saved 16, now 8" in proc.stderr, proc.stderr[-3000:]
