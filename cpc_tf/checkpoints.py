"""What a pre-training model_dir holds, and how other code reads it back.

A model_dir contains:
  config.json        the resolved PretrainConfig (`configs.to_dict`), written once
  config_changes.json  settings changed on resume (RESUMABLE_CHANGES), each with
                     the step it took effect; absent until the first change
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
Settings that may change on resume are appended to CHANGES_FILE
(config_changes.json) with the step they took effect; config.json itself is
written once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable

import tensorflow as tf

from cpc_tf import configs, records
from cpc_tf.configs import PretrainConfig
from cpc_tf.model import build_model

CONFIG_FILE = "config.json"
# Appended, never rewritten: [{"step": int | null, "changes": {field: {"from", "to"}}}].
CHANGES_FILE = "config_changes.json"

# Pre-training settings a resumed run may change (issue 9): budgets, cadence,
# and where the same data lives. Each change is appended to CHANGES_FILE with
# the step it took effect. Every other field (architecture, batch, optimizer,
# augmentation, data identity, seed, precision) shaped the checkpoints and is
# refused. train_steps / epochs also stretch a cosine schedule (optimizer.decay).
# The kNN probe only reads the weights: all of it may change, and "probe" itself
# covers a record written before the field existed.
RESUMABLE_CHANGES = ("train_steps", "epochs", "checkpoint_every", "keep_checkpoints",
                     "log_every", "steps_per_loop", "data.data_dir", "data.path", "probe",
                     *(f"probe.{f.name}" for f in dataclasses.fields(configs.ProbeConfig)))


def config_path(model_dir: str) -> str:
  return os.path.join(model_dir, CONFIG_FILE)


def write_config(config: PretrainConfig, model_dir: str) -> None:
  records.write_json(config_path(model_dir), configs.to_dict(config))


def read_config(model_dir: str) -> PretrainConfig | None:
  """The run's config (with its recorded changes applied), or None if model_dir has none."""
  path = config_path(model_dir)
  if not tf.io.gfile.exists(path):
    return None
  return configs.from_dict(PretrainConfig, _read_record(model_dir, _pretrain_way_out))


def read_record(directory: str) -> dict | None:
  """Any run directory's CONFIG_FILE with its recorded changes applied; None without one.

  An evaluation output_dir's record is {"protocol", "encoder", "config"}
  (`cpc_tf.eval.sweep.check_run`); a pre-training model_dir's is the config itself.
  """
  if not tf.io.gfile.exists(config_path(directory)):
    return None
  return _read_record(directory)


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


def _apply(doc: dict, changes: list) -> dict:
  """`doc` with every recorded change (dotted field -> {"to": value}) applied in order."""
  doc = json.loads(json.dumps(doc))
  for entry in changes:
    for name, change in entry["changes"].items():
      *parents, leaf = name.split(".")
      node = doc
      for part in parents:
        node = node.setdefault(part, {})
      node[leaf] = change["to"]
  return doc


def _general_way_out(directory: str, path: str) -> str:
  return (f"Move it aside (mv {path} {path}.damaged) and rerun with the settings the run "
          f"was started with: a new record is written from them and the checkpoints in "
          f"{directory} are kept and resumed.")


def _pretrain_way_out(directory: str, path: str) -> str:
  steps = checkpoint_steps(directory)
  if not steps:
    return _general_way_out(directory, path)
  return (f"The checkpoints are intact (steps {_list(steps)}). To recover: mv {path} "
          f"{path}.damaged, then run python -m launch.pretrain --model_dir={directory} "
          f"with the run's original flags and --train_steps={steps[-1]}: it writes a new "
          "record without training; then resume as usual.")


def _read_record(directory: str, way_out=_general_way_out) -> dict:
  """CONFIG_FILE with CHANGES_FILE applied; ValueError names a damaged file and the fix."""
  path = os.path.join(directory, CONFIG_FILE)
  saved = records.read_json(path, way_out(directory, path))
  changes_path = os.path.join(directory, CHANGES_FILE)
  changes = []
  if tf.io.gfile.exists(changes_path):
    changes = records.read_json(changes_path, way_out(directory, changes_path))
  if not isinstance(saved, dict) or not isinstance(changes, list):
    raise ValueError(f"{path} or {changes_path} is not a settings record. "
                     + way_out(directory, path))
  return _apply(saved, changes)


def _started(directory: str) -> bool:
  """Whether any checkpoint (a CheckpointManager state file) exists under directory."""
  if not tf.io.gfile.isdir(directory):
    return False
  return any("checkpoint" in files for _, _, files in tf.io.gfile.walk(directory))


def guard_config(directory: str, doc: dict, may_change: Callable[[str], bool], *,
                 write: bool, what: str, hint: str, step: int | None = None,
                 started: bool | None = None, implied: dict | None = None) -> None:
  """The one routine that writes a run's CONFIG_FILE, or checks a resumption against it.

  The settings are written once, at the first start. A resumption compares
  `doc` with them (plus the changes recorded since): a field for which
  may_change(dotted path) is False refuses the directory with every differing
  field (`what` names the other run, `hint` says what may change); the other
  differences are appended to CHANGES_FILE with `step`, the step at which they
  take effect (None where a run has no single step). `started` (default: a
  checkpoint exists under `directory`) False means an earlier start failed
  before saving anything: its record binds nothing and is replaced. A damaged
  record raises ValueError naming the file and the way out. Only the chief
  passes write=True. `implied` maps a dotted path to the value a record
  written before that field existed stands for (the behaviour of that
  version), so an old run resumes under the settings it was trained with, or
  is refused naming them ("implied") instead of a bare None.
  """
  path = os.path.join(directory, CONFIG_FILE)
  doc = json.loads(json.dumps(doc))
  if started is None:
    started = _started(directory)
  if not started or not tf.io.gfile.exists(path):
    if write:
      if tf.io.gfile.exists(os.path.join(directory, CHANGES_FILE)):
        tf.io.gfile.remove(os.path.join(directory, CHANGES_FILE))
      if not (tf.io.gfile.exists(path) and _same_file(path, doc)):
        records.write_json(path, doc)
    return
  way_out = _pretrain_way_out if "model" in doc else _general_way_out
  current = _read_record(directory, way_out)
  filled = _fill_implied(current, doc, implied or {})
  differences = diff(current, doc)
  refused = [c for c in differences if not may_change(c[0])]
  if refused:
    note = {k: " (implied: the record predates this field)" for k in filled}
    lines = "\n".join(f"  {k}: saved {a!r}{note.get(k, '')}, now {b!r}"
                      for k, a, b in refused)
    raise ValueError(f"{directory} holds {what}:\n{lines}\n{hint} (see {path}).")
  if differences and write:
    changes_path = os.path.join(directory, CHANGES_FILE)
    changes = (records.read_json(changes_path) if tf.io.gfile.exists(changes_path)
               else [])
    changes.append({"step": step, "changes": {k: {"from": a, "to": b}
                                              for k, a, b in differences}})
    records.write_json(changes_path, changes)


def _same_file(path: str, doc: dict) -> bool:
  try:
    return records.read_json(path) == doc
  except ValueError:
    return False


def check_resumable(config: PretrainConfig, model_dir: str, write: bool = False) -> None:
  """Refuses a model_dir whose saved settings differ outside RESUMABLE_CHANGES.

  Changes of RESUMABLE_CHANGES (a longer schedule, other cadence, the data
  moved) are recorded in CHANGES_FILE at the latest checkpoint's step.
  """
  steps = checkpoint_steps(model_dir)
  guard_config(model_dir, configs.to_dict(config), lambda name: name in RESUMABLE_CHANGES,
               write=write, what="a run with other settings",
               hint="Its checkpoints were trained with the saved ones. Use a new "
                    "--model_dir, or the saved settings; only "
                    f"{', '.join(_shown(RESUMABLE_CHANGES))} may change on resume",
               step=steps[-1] if steps else None,
               started=bool(tf.train.latest_checkpoint(model_dir)))


def _shown(names) -> list[str]:
  """`names` with the probe's fields folded into one "probe.*"."""
  return [n for n in names if not n.startswith("probe")] + (
      ["probe.*"] if any(n.startswith("probe") for n in names) else [])


def checkpoint_steps(model_dir: str) -> list[int]:
  """Steps of the ckpt-<step> checkpoints in model_dir, ascending."""
  steps = []
  for path in tf.io.gfile.glob(os.path.join(model_dir, "ckpt-*.index")):
    number = os.path.basename(path)[len("ckpt-"):-len(".index")]
    if number.isdigit():
      steps.append(int(number))
  return sorted(steps)


def _list(steps: list[int]) -> str:
  return ", ".join(map(str, steps))


def checkpoint_path(model_dir: str, step: int | None = None) -> str:
  """Path of the latest checkpoint (or the one at `step`); raises if there is none."""
  if step is None:
    path = tf.train.latest_checkpoint(model_dir)
  else:
    path = os.path.join(model_dir, f"ckpt-{step}")
    if not tf.io.gfile.exists(path + ".index"):
      path = None
  if path is None:
    steps = checkpoint_steps(model_dir)
    if not steps:
      raise FileNotFoundError(
          f"{model_dir} has no checkpoint; run python -m launch.pretrain "
          f"--model_dir={model_dir} first.")
    raise FileNotFoundError(
        f"{model_dir} has no checkpoint at step {step}; its checkpoints are at steps "
        f"{_list(steps)}: pass one of them, or omit the step for the latest.")
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
