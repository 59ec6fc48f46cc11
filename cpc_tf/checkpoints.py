"""What a pre-training model_dir holds, and how other code reads it back.

A model_dir contains:
  config.json        the resolved PretrainConfig (`configs.to_dict`)
  ckpt-<step>.*      tf.train.Checkpoint with entries
                       model          the trained CPCModel
                       averaged_model the Polyak-averaged twin (supp. A), what
                                      evaluation and export use; its head's
                                      keys name the layers
                                      (averaged_model/head/up/context/...)
                       optimizer      Adam slots and iteration count
                       step           int64 global step
                       (no data-iterator state: see cpc_tf.train.pretrain)
  events.out.tfevents.*  TensorBoard scalars

Evaluation reads the averaged encoder (`cpc_tf.eval.encoders.load_encoder`);
`load_averaged_model(model_dir)` gives the whole averaged CPCModel.

Every run directory (a pre-training model_dir, an evaluation output_dir)
starts with CONFIG_FILE; `guard_config` is the one routine that writes it, or
compares it with the saved one and refuses a directory holding another run.
"""

from __future__ import annotations

import json
import os
from typing import Callable

import tensorflow as tf

from cpc_tf import configs
from cpc_tf.configs import PretrainConfig
from cpc_tf.model import build_model

CONFIG_FILE = "config.json"


def config_path(model_dir: str) -> str:
  return os.path.join(model_dir, CONFIG_FILE)


def write_config(config: PretrainConfig, model_dir: str) -> None:
  _write_json(config_path(model_dir), configs.to_dict(config))


def _write_json(path: str, doc: dict) -> None:
  tf.io.gfile.makedirs(os.path.dirname(path))
  with tf.io.gfile.GFile(path, "w") as f:
    json.dump(doc, f, indent=2, sort_keys=True)


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


def _fill_implied(saved: dict, doc: dict, implied: dict) -> set[str]:
  """Writes into `saved` each implied path that `doc` has and `saved` lacks; returns them."""
  filled = set()
  for name, value in implied.items():
    *parents, key = name.split(".")
    s, d = saved, doc
    for part in parents:
      s, d = s.get(part), d.get(part)
      if not isinstance(s, dict) or not isinstance(d, dict):
        break
    else:
      if key in d and key not in s:
        s[key] = value
        filled.add(name)
  return filled


def guard_config(directory: str, doc: dict, may_change: Callable[[str], bool], *,
                 write: bool, what: str, hint: str, implied: dict | None = None) -> None:
  """Refuses a directory whose CONFIG_FILE differs from `doc`, then writes `doc`.

  may_change(dotted path) tells which fields may legitimately differ between a
  run and its resumption (budgets, cadence, data paths). `what` names the
  other run in the message, `hint` says which fields may change. Only the
  chief passes write=True. `implied` maps a dotted path to the value a file
  written before that field existed stands for (the behaviour of that
  version), so an old run resumes under the settings it was trained with, or
  is refused naming them ("implied") instead of a bare None.
  """
  path = os.path.join(directory, CONFIG_FILE)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f)
    now = json.loads(json.dumps(doc))
    filled = _fill_implied(saved, now, implied or {})
    changes = [c for c in diff(saved, now) if not may_change(c[0])]
    if changes:
      note = {k: " (implied: the file predates this field)" for k in filled}
      lines = "\n".join(f"  {k}: saved {a!r}{note.get(k, '')}, now {b!r}"
                        for k, a, b in changes)
      raise ValueError(f"{directory} holds {what}:\n{lines}\n{hint} (see {path}).")
  if write:
    _write_json(path, doc)


def check_resumable(config: PretrainConfig, model_dir: str, write: bool = False) -> None:
  """Refuses a model_dir whose saved architecture (the `model` section) differs.

  Other sections (steps, learning rate, data, ...) may change between runs:
  a longer schedule or another data path is a legitimate continuation.
  """
  guard_config(model_dir, configs.to_dict(config),
               lambda name: not name.startswith("model."), write=write,
               what="a run with a different architecture",
               hint="Its checkpoints cannot be restored into this model. Use a new "
                    "--model_dir, or the saved settings")


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
