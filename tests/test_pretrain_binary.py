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
  """A binary run in the background, its stdout collected by a thread."""

  def __init__(self, args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
    self.output = []
    self._thread = threading.Thread(target=self._read, daemon=True)
    self._thread.start()

  def _read(self):
    for chunk in iter(lambda: self.proc.stdout.read(1), ""):
      self.output.append(chunk)

  def text(self):
    return "".join(self.output)

  def wait_for(self, predicate, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline:
      if predicate():
        return
      if self.proc.poll() is not None:
        raise AssertionError(f"exited with {self.proc.returncode}:\n{self.text()[-3000:]}")
      time.sleep(0.5)
    self.proc.kill()
    raise AssertionError(f"timed out:\n{self.text()[-3000:]}")

  def finish(self, timeout=300):
    self.proc.wait(timeout)
    self._thread.join(10)
    return self.proc.returncode


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


def test_sigterm_saves_a_checkpoint_before_exit(tmp_path):
  model_dir = str(tmp_path)
  job = Background(command(model_dir, "--train_steps=100000", "--checkpoint_every=100000"))
  job.wait_for(lambda: "step: 2" in job.text())
  job.proc.send_signal(signal.SIGTERM)
  assert job.finish() == 128 + signal.SIGTERM, job.text()[-3000:]
  assert "Preempted at step" in job.text()
  step = int(job.text().split("Preempted at step ")[1].split(":")[0])
  assert step >= 2
  assert tf.train.latest_checkpoint(model_dir).endswith(f"ckpt-{step}")


@pytest.mark.slow
def test_sigkill_then_restart_continues_from_the_last_checkpoint(tmp_path):
  model_dir = str(tmp_path)
  args = command(model_dir, "--train_steps=40", "--checkpoint_every=4")
  job = Background(args)
  job.wait_for(lambda: tf.train.latest_checkpoint(model_dir) is not None
               and "step: 6" in job.text())
  job.proc.kill()
  job.finish()
  saved = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
  assert 4 <= saved < 40

  proc = run(args)  # the same command, no flag changes
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
  resumed = int(proc.stdout.split("Resuming at step ")[1].split(" ")[0])
  assert resumed % 4 == 0 and resumed >= saved
  assert "Done: step 40" in proc.stdout
  reader = tf.train.load_checkpoint(model_dir)
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 40


@pytest.mark.parametrize("args, message", [
    (["--preset=nope"], "Unknown preset 'nope'"),
    (["--tpu=my-tpu"], "--tpu=my-tpu needs --strategy=tpu"),
    (["--strategy=multi_worker"], "TF_CONFIG"),
    (["--batch_size=0"], "positive multiple"),
    (["--dataset=folder:"], "needs a path"),
])
def test_bad_flags_are_refused_with_a_clear_message(tmp_path, args, message):
  env_args = command(str(tmp_path), *args)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  env.pop("TF_CONFIG", None)
  proc = subprocess.run(env_args, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode != 0
  assert message in proc.stderr, proc.stderr[-3000:]


def test_help_lists_every_flag_with_its_default():
  proc = run([sys.executable, "-m", "launch.pretrain", "--help"])  # absl exits 1 here
  for name in ["model_dir", "strategy", "tpu", "preset", "dataset",
               *common.PRETRAIN_OVERRIDES]:
    assert f"--{name}" in proc.stdout or f"--[no]{name}" in proc.stdout, name
  assert "(default: 'fashion_mnist_small')" in proc.stdout
  assert "python -m launch.pretrain --preset=fashion_mnist_small" in proc.stdout


def test_another_architecture_in_model_dir_is_refused(tmp_path):
  other = configs.replace(configs.tiny(), **{"model.head.target_dim": 16})
  checkpoints.write_config(other, str(tmp_path))
  proc = run(command(str(tmp_path)))
  assert proc.returncode != 0
  assert "model.head.target_dim: saved 16, now 8" in proc.stderr, proc.stderr[-3000:]
