"""Two workers on localhost under MultiWorkerMirroredStrategy agree step by step."""

import json
import os
import socket
import subprocess
import sys
import textwrap

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
  sockets = [socket.socket() for _ in range(n)]
  for s in sockets:
    s.bind(("127.0.0.1", 0))
  ports = [s.getsockname()[1] for s in sockets]
  for s in sockets:
    s.close()
  return ports


def run_workers(script: str, n: int = 2) -> list[dict]:
  """Runs `script` as n workers of one localhost cluster (TF_CONFIG); returns the
  JSON each printed on its last "RESULT " line, in worker order."""
  cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(n)]}
  procs = []
  for index in range(n):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT,
               TF_CONFIG=json.dumps({"cluster": cluster,
                                     "task": {"type": "worker", "index": index}}))
    procs.append(subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True))
  outputs = [proc.communicate(timeout=900) for proc in procs]
  for index, proc in enumerate(procs):
    assert proc.returncode == 0, f"worker {index}:\n" + "\n".join(
        e[-3000:] for _, e in outputs)
  return [json.loads([l for l in out.splitlines() if l.startswith("RESULT ")][-1][7:])
          for out, _ in outputs]


@pytest.mark.slow
def test_two_workers_agree(tmp_path):
  model_dir = str(tmp_path / "run")
  results = run_workers(textwrap.dedent(WORKER.format(tests=os.path.join(ROOT, "tests"),
                                                      model_dir=model_dir)))
  chief, other = results
  assert chief["step"] == other["step"] == 3
  assert chief["loss"] == pytest.approx(other["loss"], rel=1e-6)
  for a, b in zip(chief["weights"] + chief["averaged"], other["weights"] + other["averaged"]):
    np.testing.assert_allclose(a, b, rtol=1e-6)
  # The chief owns model_dir; the other worker's scratch checkpoints are gone.
  names = os.listdir(model_dir)
  assert "ckpt-3.index" in names and "config.json" in names
  assert not [n for n in names if n.startswith(".worker-")]
