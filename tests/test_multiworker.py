"""Two workers on localhost under MultiWorkerMirroredStrategy agree step by step."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

WORKER = """
import json, sys
import numpy as np, tensorflow as tf
sys.path.insert(0, {tests!r})
from cpc_tf import configs, distribute, train
from test_train import small_config, synthetic_fn

strategy = distribute.make_strategy("multi_worker")
config = small_config(train_steps=3, checkpoint_every=2)
result = train.pretrain(config, {model_dir!r}, strategy, dataset_fn=synthetic_fn(config),
                        verbose=False)
weights = [w.tolist() for w in result.trainer.model.get_weights()[:4]]
averaged = [w.tolist() for w in result.trainer.averaged_model.get_weights()[-4:]]
print("RESULT " + json.dumps({{"step": result.step, "loss": result.metrics["loss"],
                               "weights": weights, "averaged": averaged}}))
"""


def free_ports(n):
  """n ports free now. Another process may take one before a worker binds it:
  run_workers then retries with fresh ports."""
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


# What TensorFlow says when a worker's port was taken after free_ports chose it.
PORT_TAKEN = "Could not start gRPC server"


def run_workers(script: str, n: int = 2, timeout: float = 900, attempts: int = 3) -> list[dict]:
  """Runs `script` as n workers of one localhost cluster (TF_CONFIG); returns the
  JSON each printed on its last "RESULT " line, in worker order.

  Waits for the processes to exit, never for a time or for text: as soon as one
  worker fails the others (which would wait for it forever) are killed, and
  `timeout` (for the whole cluster) only guards against a hang. A cluster whose
  port was taken by another process before its worker bound it is started
  again on fresh ports.
  """
  for attempt in range(attempts):
    outputs, failed = _run_cluster(script, n, timeout)
    if not failed:
      return [json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])
              for out, _ in outputs]
    if not any(PORT_TAKEN in err for _, err in outputs) or attempt == attempts - 1:
      raise AssertionError(failed + "\n" + "\n".join(
          f"worker {i} stderr:\n{err[-3000:]}" for i, (_, err) in enumerate(outputs)))
  raise AssertionError("unreachable")


def _run_cluster(script, n, timeout):
  """Starts the n workers and waits for all; returns ([(stdout, stderr)], failure)."""
  cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(n)]}
  procs, files = [], []
  try:
    for index in range(n):
      env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT,
                 TF_CONFIG=json.dumps({"cluster": cluster,
                                       "task": {"type": "worker", "index": index}}))
      # Files, not pipes: a worker blocked on a full pipe would stall the cluster.
      out, err = tempfile.TemporaryFile("w+"), tempfile.TemporaryFile("w+")
      files.append((out, err))
      procs.append(subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                                    stdout=out, stderr=err, text=True))
    failed = ""
    deadline = time.monotonic() + timeout
    while not failed and any(p.poll() is None for p in procs):
      bad = [i for i, p in enumerate(procs) if p.poll() not in (None, 0)]
      if bad:
        failed = f"worker {bad[0]} exited with {procs[bad[0]].returncode}"
      elif time.monotonic() > deadline:
        failed = f"workers still running after {timeout} s"
      else:
        time.sleep(0.2)
    if not failed:
      bad = [i for i, p in enumerate(procs) if p.returncode != 0]
      failed = f"worker {bad[0]} exited with {procs[bad[0]].returncode}" if bad else ""
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
        p.wait()
  outputs = []
  for out, err in files:
    out.seek(0)
    err.seek(0)
    outputs.append((out.read(), err.read()))
    out.close()
    err.close()
  return outputs, failed


@pytest.mark.slow
def test_two_workers_agree(tmp_path):
  model_dir = str(tmp_path / "run")
  results = run_workers(textwrap.dedent(WORKER.format(tests=os.path.join(ROOT, "tests"),
                                                      model_dir=model_dir)))
  chief, other = results
  assert chief["step"] == other["step"] == 3
  assert chief["loss"] == pytest.approx(other["loss"], rel=1e-6)
  # Both workers apply the same all-reduced gradients (one collective result) with the
  # same ops: identical but for ~8 eps of slack.
  for a, b in zip(chief["weights"] + chief["averaged"], other["weights"] + other["averaged"]):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  # The chief owns model_dir; the other worker's scratch checkpoints are gone.
  names = os.listdir(model_dir)
  assert "ckpt-3.index" in names and "config.json" in names
  assert not [n for n in names if n.startswith(".worker-")]


def test_run_workers_kills_the_cluster_when_one_worker_fails(tmp_path):
  """Worker 1 fails at once; worker 0 (which would wait for it forever) is killed."""
  script = textwrap.dedent("""
      import json, os, sys, time
      if json.loads(os.environ["TF_CONFIG"])["task"]["index"] == 1:
        sys.exit("worker 1 gives up")
      time.sleep(3600)
  """)
  started = time.monotonic()
  with pytest.raises(AssertionError, match="worker 1 exited with 1"):
    run_workers(script, timeout=600)
  assert time.monotonic() - started < 300  # not the 600 s guard, not the sleep


def test_run_workers_retries_a_cluster_whose_port_was_taken(tmp_path):
  """The first start of each worker fails as TensorFlow does on a taken port."""
  script = textwrap.dedent(f"""
      import json, os, sys
      index = json.loads(os.environ["TF_CONFIG"])["task"]["index"]
      marker = os.path.join({str(tmp_path)!r}, f"started-{{index}}")
      if not os.path.exists(marker):
        open(marker, "w").close()
        sys.exit({PORT_TAKEN!r})
      print("RESULT " + json.dumps({{"index": index}}))
  """)
  assert run_workers(script) == [{"index": 0}, {"index": 1}]
