"""cpc_tf.stop: SIGTERM / SIGINT set a flag; a watchdog ends a run stuck in its input."""

import os
import signal
import subprocess
import sys

import pytest

from cpc_tf import stop
from test_pretrain_binary import ROOT, Background, catches, checkpoint_step


def test_sigint_sets_the_flag_and_status_instead_of_raising():
  # Whatever handled SIGINT before (a shell's background job ignores it) comes back.
  before = signal.getsignal(signal.SIGINT)
  with stop.StopSignal(grace=60) as stop_signal:
    assert not stop_signal.requested
    os.kill(os.getpid(), signal.SIGINT)  # the handler runs before the next line
    assert stop_signal.requested
  assert (stop_signal.status, stop_signal.name) == (130, "SIGINT")
  assert signal.getsignal(signal.SIGINT) is before  # restored


# Pre-training on a source that never yields (issue 9: a folder whose images all
# fail to decode hung step 0 forever, deaf to SIGTERM). The generator leaves a
# file when it starts blocking: the test synchronises on it, never on output.
STUCK = r"""
import sys, threading
import tensorflow as tf
from cpc_tf import configs, train

marker, model_dir = sys.argv[1:]
config = configs.replace(configs.tiny(), **{"model.head.directions": ("down",)})
g = config.model.grid

def never():
  open(marker, "w").close()
  threading.Event().wait()
  yield 0

def dataset_fn(ctx, seed):
  shape = [ctx.get_per_replica_batch_size(config.batch_size), g.grid_size, g.grid_size,
           g.patch_size, g.patch_size, 3]
  return tf.data.Dataset.from_generator(
      never, output_signature=tf.TensorSpec([], tf.int32)).map(lambda _: tf.zeros(shape))

train.pretrain(config, model_dir, dataset_fn=dataset_fn, verbose=False, stop_grace=1.0)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
@pytest.mark.parametrize("signum", [  # SIGINT takes the same path: -m slow only
    signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)])
def test_a_signal_ends_a_run_stuck_in_its_input_pipeline(tmp_path, signum):
  marker, model_dir = str(tmp_path / "blocking"), str(tmp_path / "run")
  with Background([sys.executable, "-c", STUCK, marker, model_dir]) as job:
    job.wait_for(lambda: os.path.exists(marker) and catches(job.proc.pid,
                                                              signal.SIGTERM))
    job.proc.send_signal(signum)
    assert job.finish(timeout=120) == 128 + signum, job.text()[-3000:]
  name = signal.Signals(signum).name
  assert (f"Error: {name} received, but the running step did not return within 1 s (is "
          "the input pipeline stuck? check the data source); exiting without saving. "
          "No checkpoint had been saved yet.") in job.text(), job.text()[-3000:]
  assert checkpoint_step(model_dir) is None
