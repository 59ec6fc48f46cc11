"""tf.distribute set-up shared by every loop: strategies, the chief, scratch dirs, precision.

One home for the idioms each loop needs:
  * `make_strategy(name)` for the names of `configs.STRATEGIES`;
  * `is_chief(strategy)`: the one process that writes configs, summaries,
    results and the real checkpoints;
  * `worker_dir(path, strategy)`: under a multi-worker strategy every worker
    must take part in saving (variables may be distributed), but only the
    chief writes `path`; the others write to a scratch directory of their own
    (`path/.worker-<id>`) and read the chief's files;
  * `set_precision(name)`: the global Keras dtype policy.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from cpc_tf.configs import PRECISIONS, STRATEGIES


def make_strategy(name: str = "default", tpu: str | None = None) -> tf.distribute.Strategy:
  """The tf.distribute strategy called `name` (one of STRATEGIES).

  default       one device (the first GPU if any, else the CPU)
  mirrored      all local GPUs (or the logical CPU devices) of this machine
  multi_worker  MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG
  tpu           TPUStrategy on the TPU named `tpu` (a name or grpc:// address;
                empty for a local TPU VM)
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    return tf.distribute.MirroredStrategy()
  if name == "multi_worker":
    if "TF_CONFIG" not in os.environ:
      raise ValueError("--strategy=multi_worker reads the cluster from the TF_CONFIG "
                       "environment variable, which is not set.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  if name == "tpu":
    return _tpu_strategy(tpu or "")
  raise ValueError(f"Unknown strategy {name!r}; choose one of {STRATEGIES}.")


def _tpu_strategy(tpu: str) -> tf.distribute.Strategy:
  """TPUStrategy on `tpu`; ValueError in one line when it cannot be found or reached.

  The resolver asks the Cloud TPU API (over the network) for a name, so a
  wrong name or no network surfaces as URLError, HttpError, ValueError or an
  OpError from deep inside; the user needs only the name and what to check.
  """
  try:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
  except Exception as e:  # noqa: BLE001  the resolver's errors have no common base
    cause = str(getattr(e, "reason", None) or e).splitlines()
    where = f"--tpu={tpu}" if tpu else "--tpu='' (the local TPU VM)"
    raise ValueError(
        f"{where}: no such TPU could be reached ({type(e).__name__}: "
        f"{cause[0] if cause else 'no detail'}). Check the name (gcloud compute tpus "
        "list), its zone and project, and that this machine can reach it; or give its "
        "grpc://host:8470 address.") from None
  return tf.distribute.TPUStrategy(resolver)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes config, summaries and the real checkpoints."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return True
  if resolver.task_type == "chief":
    return True
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def worker_dir(path: str, strategy: tf.distribute.Strategy) -> str:
  """`path` on the chief; `path/.worker-<task id>` (its own scratch copy) elsewhere."""
  if is_chief(strategy):
    return path
  return os.path.join(path, f".worker-{strategy.cluster_resolver.task_id}")


def set_precision(precision: str) -> None:
  """Global Keras dtype policy; set before building the model."""
  if precision not in PRECISIONS:
    raise ValueError(f"precision={precision!r}: choose one of {PRECISIONS}.")
  keras.mixed_precision.set_dtype_policy(precision)
