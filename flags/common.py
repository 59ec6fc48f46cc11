"""absl flags shared by the binaries, and flags -> PretrainConfig.

A run's config starts from `--preset` (a function in `cpc_tf.configs.PRESETS`)
and each override flag replaces one config field ONLY if the user set it.
Override defaults are read from the `PretrainConfig` dataclass fields (the one
place defaults are written); `--help` shows them, the preset may differ.
"""

from __future__ import annotations

import os

from absl import flags

from cpc_tf import configs
from cpc_tf.configs import PretrainConfig
from cpc_tf.configs import DEFAULT_PRESET, PRECISIONS, STRATEGIES
from flags import axes

# flag -> (dotted PretrainConfig field, help, allowed values or None).
PRETRAIN_OVERRIDES = {
    "batch_size": ("batch_size", "Global batch over all replicas (supp. A: 512).", None),
    "train_steps": ("train_steps", "Training steps; > 0 takes precedence over --epochs.",
                    None),
    "epochs": ("epochs", "Passes over the data, used when the train steps are 0.", None),
    "learning_rate": ("optimizer.learning_rate", "Adam learning rate (supp. A: 4e-4).",
                      None),
    "clip_norm": ("optimizer.clip_norm", "Global gradient-norm clip (supp. A: 0.01).",
                  None),
    "polyak_decay": ("optimizer.polyak_decay",
                     "Decay of the Polyak-averaged weights that are evaluated and "
                     "exported (supp. A: 0.9999).", None),
    "warmup_steps": ("optimizer.warmup_steps",
                     "Linear learning-rate warm-up steps; 0 = none (the paper's).", None),
    "lr_decay": ("optimizer.decay", "Learning-rate decay after warm-up.",
                 ("none", "cosine")),
    "data_dir": ("data.data_dir", "TFDS data directory (TFDS datasets only).", None),
    "split": ("data.split", "Dataset split to pre-train on.", None),
    "max_examples": ("data.max_examples", "Use only the first N examples; 0 = all.", None),
    "seed": ("seed", "Seed of the data pipeline (shuffle, crops, augmentation).", None),
    "precision": ("precision",
                  "Keras dtype policy; the loss and the weights stay float32.", PRECISIONS),
    "cross_replica_negatives": (
        "cross_replica_negatives",
        "Score each replica's predictions against the patches of the whole global "
        "batch (ICLR A.2: every patch of every image); false keeps negatives per "
        "replica. Paper scale (supp. A, 512 images over 32 workers, 6x6 grid): "
        "18,432 candidates global vs 576 per replica.", None),
    "remat": ("model.encoder.remat",
              "Recompute each residual stack in the backward pass (tf.recompute_grad): "
              "less activation memory for about a third more FLOPs, same gradients "
              "(benchmarks/pretrain_bench.md). A memory switch, not an ablation axis.",
              None),
    "checkpoint_every": ("checkpoint_every", "Save a checkpoint every N steps.", None),
    "keep_checkpoints": ("keep_checkpoints", "Keep the last K checkpoints.", None),
    "log_every": ("log_every", "Write TensorBoard scalars every N steps.", None),
    "steps_per_loop": ("steps_per_loop",
                       "Training steps per tf.function call (inner tf.range loop).", None),
    "probe_every": ("probe.every_steps",
                    "Online kNN probe (cpc_tf.probe): every N steps the chief logs "
                    "probe/knn_top1, the k-nearest-neighbour top-1 of the averaged "
                    "encoder's mean-pooled features on a small labelled set; 0 = off. "
                    "On in the Fashion-MNIST preset; a --dataset other than the preset's "
                    "switches it off unless a --probe_* flag is set.", None),
    "probe_k": ("probe.k", "Neighbours that vote in the kNN probe (majority vote, cosine "
                "similarity; a tie goes to the class of the nearest).", None),
    "probe_split": ("probe.split", "Labelled split the probe draws its memory and query "
                    "images from (disjoint); the training split keeps test unseen.", None),
    "probe_memory_size": ("probe.memory_size", "Probe memory (reference) images.", None),
    "probe_query_size": ("probe.query_size",
                         "Probe query images; probe/knn_top1 is the top-1 over them.", None),
    **axes.AXIS_FLAGS,  # every ablation axis (SPEC 6)
}
PROBE_SOURCE_HELP = (
    "Labelled images of the kNN probe: empty = the pre-training data (--dataset); else "
    "'fashion_mnist', a TFDS name, or an image folder of class sub-folders as "
    "'folder:/path' or a path.")
PROBE_FLAGS = ("probe_every", "probe_k", "probe_split", "probe_memory_size",
               "probe_query_size", "probe_source")


def field_default(path: str, config=None):
  """Value of a dotted field of PretrainConfig() (or of `config`)."""
  value = PretrainConfig() if config is None else config
  for part in path.split("."):
    value = getattr(value, part)
  return value


def define_flag(name: str, default, help_text: str, choices, flag_values) -> None:
  """An absl flag whose type follows its default (enum when `choices` is given)."""
  if choices is not None:
    flags.DEFINE_enum(name, default, choices, help_text, flag_values=flag_values)
  elif isinstance(default, tuple):
    flags.DEFINE_list(name, list(default), help_text, flag_values=flag_values)
  elif isinstance(default, bool):
    flags.DEFINE_bool(name, default, help_text, flag_values=flag_values)
  elif isinstance(default, int):
    flags.DEFINE_integer(name, default, help_text, flag_values=flag_values)
  elif isinstance(default, float):
    flags.DEFINE_float(name, default, help_text, flag_values=flag_values)
  else:
    flags.DEFINE_string(name, default, help_text, flag_values=flag_values)


def define_model_dir(flag_values=flags.FLAGS, help_text: str | None = None) -> None:
  flags.DEFINE_string(
      "model_dir", None, help_text or "Pre-training directory: config.json, checkpoints, "
      "TensorBoard events. Rerunning with the same directory resumes.",
      flag_values=flag_values)
  flags.mark_flag_as_required("model_dir", flag_values=flag_values)


def define_strategy_flags(flag_values=flags.FLAGS) -> None:
  flags.DEFINE_enum(
      "strategy", "default", STRATEGIES,
      "tf.distribute strategy: default (one device), mirrored (all local devices), "
      "multi_worker (cluster from the TF_CONFIG environment variable), tpu (--tpu).",
      flag_values=flag_values)
  flags.DEFINE_string(
      "tpu", None, "TPU name or grpc:// address for --strategy=tpu (empty string: "
      "the local TPU VM).", flag_values=flag_values)


def define_pretrain_flags(flag_values=flags.FLAGS) -> None:
  """--model_dir, --strategy, --tpu, --preset, --dataset and every override."""
  define_model_dir(flag_values)
  define_strategy_flags(flag_values)
  flags.DEFINE_string(
      "preset", DEFAULT_PRESET,
      f"Starting config, one of {sorted(configs.PRESETS)}; the flags below override it.",
      flag_values=flag_values)
  flags.DEFINE_string(
      "dataset", None,
      "Pre-training images: 'fashion_mnist' (embedded), a TFDS name (e.g. "
      "imagenet2012, stl10), or an image folder as 'folder:/path' or a path. "
      "Default: the preset's.", flag_values=flag_values)
  flags.DEFINE_string("probe_source", field_default("probe.source"), PROBE_SOURCE_HELP,
                      flag_values=flag_values)
  for name, (path, help_text, choices) in PRETRAIN_OVERRIDES.items():
    define_flag(name, field_default(path), f"{help_text} Overrides the preset; the default "
            "shown is the PretrainConfig field's.", choices, flag_values)
  axes.define_prediction_lengths(flag_values)


def dataset_override(value: str) -> dict:
  """--dataset value -> {"data.source": ..., "data.path": ...} changes."""
  if value.startswith("folder:"):
    path = value[len("folder:"):]
    if not path:
      raise ValueError("--dataset=folder: needs a path, e.g. --dataset=folder:/data/images.")
    return {"data.source": "folder", "data.path": path}
  # TFDS names may contain "/" (imagenet2012_subset/1pct): only explicit or
  # existing paths mean a folder.
  if value.startswith(("/", ".", "~")) or os.path.isdir(value):
    return {"data.source": "folder", "data.path": os.path.expanduser(value)}
  return {"data.source": value}


def set_flag_changes(overrides: dict, flag_values) -> dict:
  """{dotted config field: value} of every flag of `overrides` the user set.

  `overrides` maps flag -> (dotted field, help, choices), as PRETRAIN_OVERRIDES;
  list flags become tuples (config fields are tuples).
  """
  changes = {}
  for name, (path, _, _) in overrides.items():
    if flag_values[name].present:
      value = flag_values[name].value
      changes[path] = tuple(value) if isinstance(value, list) else value
  return changes


def config_from_flags(flag_values=flags.FLAGS) -> PretrainConfig:
  """The preset, with the fields of every flag the user set replaced.

  Raises ValueError with a clear message for an unknown preset or a config that
  cannot run (e.g. a grid too small for the prediction offsets).
  """
  config = configs.preset(flag_values.preset)
  changes = set_flag_changes(PRETRAIN_OVERRIDES, flag_values)
  changes.update(axes.prediction_length_changes(flag_values))
  if flag_values["dataset"].present:
    changes.update(dataset_override(flag_values.dataset))
  if flag_values["probe_source"].present:
    changes.update(probe_source_override(flag_values.probe_source))
  probe_flags = [n for n in PROBE_FLAGS if flag_values[n].present]
  other_data = any(changes.get(f"data.{k}", getattr(config.data, k))
                   != getattr(config.data, k) for k in ("source", "path"))
  if (flag_values["dataset"].present and other_data and not probe_flags
      and not config.probe.source):
    # The preset's probe read the preset's data; the new data may have no labels
    # (the probe is on by default only for the embedded Fashion-MNIST).
    changes["probe.every_steps"] = 0
  return configs.replace(config, **changes)



def probe_source_override(value: str) -> dict:
  """--probe_source value -> {"probe.source": ..., "probe.path": ...} changes."""
  if not value:
    return {"probe.source": "", "probe.path": None}
  try:
    data = dataset_override(value)
  except ValueError:
    raise ValueError("--probe_source=folder: needs a path, e.g. "
                     "--probe_source=folder:/data/labelled.") from None
  return {"probe.source": data["data.source"], "probe.path": data.get("data.path")}


def check_strategy_flags(flag_values=flags.FLAGS) -> None:
  """Refuses strategy flag combinations that would be silently ignored."""
  if flag_values.tpu is not None and flag_values.strategy != "tpu":
    raise ValueError(f"--tpu={flag_values.tpu} needs --strategy=tpu "
                     f"(got --strategy={flag_values.strategy}).")


def driver_main(config_from_flags, run, report, flag_values=flags.FLAGS):
  """The absl `main` of a multi-stage driver binary (launch/ablation.py, launch/study.py).

  Builds the config (`config_from_flags(flag_values)`) and the strategy, calls
  `run(config, output_dir, strategy)`, then `report(output_dir)` (prints what was
  written). SIGTERM / Ctrl-C during a stage (saved) exit with 128 + the signal;
  bad input exits with one clear line.
  """
  import sys

  from absl import app

  from cpc_tf import distribute, records, stop
  from cpc_tf.data import DataError

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
      records.check_writable(flag_values.output_dir, "--output_dir")
      config = config_from_flags(flag_values)
      check_strategy_flags(flag_values)
      strategy = distribute.make_strategy(flag_values.strategy, flag_values.tpu)
      run(config, flag_values.output_dir, strategy)
    except stop.Stopped as e:  # its message says how to resume
      print(e, flush=True)
      sys.exit(e.status)
    except (ValueError, FileNotFoundError, DataError, stop.NonFiniteLossError,
            records.WriteError) as e:
      sys.exit(f"Error: {e}")
    report(flag_values.output_dir)

  return main
