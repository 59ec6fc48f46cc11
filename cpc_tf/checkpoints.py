"""What a pre-training model_dir holds, and how other code reads it back.

A model_dir contains:
  config.json        the resolved PretrainConfig (`configs.to_dict`)
  ckpt-<step>.*      tf.train.Checkpoint with entries
                       model          the trained CPCModel
                       averaged_model the Polyak-averaged twin (supp. A), what
                                      evaluation and export use; its head's
                                      keys name the layers
                                      (averaged_model/head/up/context/...)
                       optimizer      ClippedAdam slots and iteration count
                       step           int64 global step
                       (no data-iterator state: see cpc_tf.train.pretrain)
  events.out.tfevents.*  TensorBoard scalars

Evaluation binaries call `load_averaged_model(model_dir)`.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from cpc_tf import configs
from cpc_tf.configs import PretrainConfig
from cpc_tf.model import build_model

CONFIG_FILE = "config.json"


def config_path(model_dir: str) -> str:
  return os.path.join(model_dir, CONFIG_FILE)


def write_config(config: PretrainConfig, model_dir: str) -> None:
  tf.io.gfile.makedirs(model_dir)
  with tf.io.gfile.GFile(config_path(model_dir), "w") as f:
    json.dump(configs.to_dict(config), f, indent=2, sort_keys=True)


def read_config(model_dir: str) -> PretrainConfig | None:
  """The saved config, or None if model_dir has none."""
  path = config_path(model_dir)
  if not tf.io.gfile.exists(path):
    return None
  with tf.io.gfile.GFile(path) as f:
    return configs.from_dict(PretrainConfig, json.load(f))


def diff(a, b, prefix: str = "") -> list[tuple[str, object, object]]:
  """Dotted paths where two config dicts differ, with both values."""
  out = []
  for key in sorted(set(a) | set(b)):
    name = f"{prefix}{key}"
    va, vb = a.get(key), b.get(key)
    if isinstance(va, dict) and isinstance(vb, dict):
      out += diff(va, vb, name + ".")
    elif va != vb and not (isinstance(va, (list, tuple)) and isinstance(vb, (list, tuple))
                           and list(va) == list(vb)):
      out.append((name, va, vb))
  return out


def check_resumable(config: PretrainConfig, model_dir: str) -> None:
  """Refuses a model_dir whose saved architecture (the `model` section) differs.

  Other sections (steps, learning rate, data, ...) may change between runs:
  a longer schedule or another data path is a legitimate continuation.
  """
  saved = read_config(model_dir)
  if saved is None:
    return
  changes = diff(configs.to_dict(saved.model), configs.to_dict(config.model), "model.")
  if changes:
    lines = "\n".join(f"  {name}: saved {old!r}, now {new!r}" for name, old, new in changes)
    raise ValueError(
        f"{model_dir} holds a run with a different architecture:\n{lines}\n"
        "Its checkpoints cannot be restored into this model. Use a new --model_dir, "
        "or the saved settings (see its config.json).")


def checkpoint_path(model_dir: str, step: int | None = None) -> str:
  """Path of the latest checkpoint (or the one at `step`); raises if there is none."""
  if step is None:
    path = tf.train.latest_checkpoint(model_dir)
  else:
    path = os.path.join(model_dir, f"ckpt-{step}")
    if not tf.io.gfile.exists(path + ".index"):
      path = None
  if path is None:
    which = "any checkpoint" if step is None else f"a checkpoint at step {step}"
    raise FileNotFoundError(
        f"{model_dir} has no {which}; run launch/pretrain.py with --model_dir={model_dir} "
        "first.")
  return path


def load_averaged_model(model_dir: str, step: int | None = None):
  """(PretrainConfig, CPCModel) carrying the Polyak-averaged weights of a run.

  Reads config.json, builds the model, restores the checkpoint's
  `averaged_model` entry (the latest checkpoint, or the one at `step`). Call it
  inside a strategy's scope to get distributed variables. Use
  `model.encoder` for the encoder alone.
  """
  config = read_config(model_dir)
  if config is None:
    raise FileNotFoundError(f"{config_path(model_dir)} not found: is {model_dir} a "
                            "pre-training model_dir?")
  model = build_model(config.model)
  status = tf.train.Checkpoint(averaged_model=model).read(
      checkpoint_path(model_dir, step))
  status.expect_partial().assert_existing_objects_matched()
  return config, model
