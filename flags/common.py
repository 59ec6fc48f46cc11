"""absl flags shared by the binaries, and flags -> PretrainConfig.

A run's config starts from `--preset` (a function in `cpc_tf.configs.PRESETS["pretrain"]`);
each short flag of PRETRAIN_ALIASES replaces its config field ONLY if the user set
it, and --config.PATH=VALUE then sets any field (flags/config_flags.py).
The defaults `--help` shows are those of the preset on the command line (else
the default preset), so they are what the run would use.
"""

from __future__ import annotations

import os
import sys
from typing import Sequence

from absl import flags

from cpc_tf import configs
from cpc_tf.configs import PretrainConfig
from cpc_tf.configs import STRATEGIES
from flags import axes, config_flags

# flag -> (dotted PretrainConfig field, help): flags/config_flags.py alias table.
PRETRAIN_ALIASES = {
    "batch_size": ("batch_size", "Global batch over all replicas (supp. A: 512)."),
    "train_steps": ("train_steps", "Training steps; > 0 takes precedence over --epochs."),
    "epochs": ("epochs", "Passes over the data, used when the train steps are 0."),
    "learning_rate": ("optimizer.learning_rate", "Adam learning rate (supp. A: 4e-4)."),
    "clip_norm": ("optimizer.clip_norm", "Global gradient-norm clip (supp. A: 0.01)."),
    "polyak_decay": ("optimizer.polyak_decay",
                     "Decay of the Polyak-averaged weights that are evaluated and "
                     "exported (supp. A: 0.9999)."),
    "warmup_steps": ("optimizer.warmup_steps",
                     "Linear learning-rate warm-up steps; 0 = none (the paper's)."),
    "lr_decay": ("optimizer.decay", "Learning-rate decay after warm-up."),
    "data_dir": ("data.data_dir", "TFDS data directory (TFDS datasets only)."),
    "split": ("data.split", "Dataset split to pre-train on."),
    "max_examples": ("data.max_examples", "Use only the first N examples; 0 = all."),
    "seed": ("seed", "Seed of the data pipeline (shuffle, crops, augmentation)."),
    "precision": ("precision",
                  "Keras dtype policy; the loss and the weights stay float32."),
    "cross_replica_negatives": (
        "cross_replica_negatives",
        "Score each replica's predictions against the patches of the whole global "
        "batch (ICLR A.2: every patch of every image); false keeps negatives per "
        "replica. Paper scale (supp. A, 512 images over 32 workers, 6x6 grid): "
        "18,432 candidates global vs 576 per replica."),
    "remat": ("model.encoder.remat",
              "Recompute each residual stack in the backward pass (tf.recompute_grad): "
              "less activation memory for about a third more FLOPs, same gradients "
              "(benchmarks/pretrain_bench.md). A memory switch, not an ablation axis."),
    "checkpoint_every": ("checkpoint_every", "Save a checkpoint every N steps."),
    "keep_checkpoints": ("keep_checkpoints", "Keep the last K checkpoints."),
    "log_every": ("log_every", "Write TensorBoard scalars every N steps."),
    "steps_per_loop": ("steps_per_loop",
                       "Training steps per tf.function call (inner tf.range loop)."),
    "probe_every": ("probe.every_steps",
                    "Online kNN probe (cpc_tf.probe): every N steps the chief logs "
                    "probe/knn_top1, the k-nearest-neighbour top-1 of the averaged "
                    "encoder's mean-pooled features on a small labelled set; 0 = off. "
                    "On in the Fashion-MNIST preset; a --dataset other than the preset's "
                    "switches it off unless a --probe_* flag is set."),
    "probe_k": ("probe.k", "Neighbours that vote in the kNN probe (majority vote, cosine "
                "similarity; a tie goes to the class of the nearest)."),
    "probe_split": ("probe.split", "Labelled split the probe draws its memory and query "
                    "images from (disjoint); the training split keeps test unseen."),
    "probe_memory_size": ("probe.memory_size", "Probe memory (reference) images."),
    "probe_query_size": ("probe.query_size",
                         "Probe query images; probe/knn_top1 is the top-1 over them."),
    **axes.AXIS_ALIASES,  # every ablation axis (SPEC 6)
}
PROBE_SOURCE_HELP = (
    "Labelled images of the kNN probe: empty = the pre-training data (--dataset); else "
    "'fashion_mnist', a TFDS name, or an image folder of class sub-folders as "
    "'folder:/path' or a path.")
PROBE_FLAGS = ("probe_every", "probe_k", "probe_split", "probe_memory_size",
               "probe_query_size", "probe_source")


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


def argv_preset(kind: str, argv: Sequence[str] | None = None) -> str:
  """The --preset given in `argv` (sys.argv) if it names a preset of `kind`, else the
  default (configs.DEFAULTS[kind]).

  Read before parsing so that --help can show the chosen preset's defaults.
  """
  argv = sys.argv[1:] if argv is None else argv
  name = configs.DEFAULTS[kind]
  for i, arg in enumerate(argv):
    if arg.startswith("--preset="):
      name = arg[len("--preset="):]
    elif arg == "--preset" and i + 1 < len(argv):
      name = argv[i + 1]
  return name if name in configs.PRESETS[kind] else configs.DEFAULTS[kind]


def define_pretrain_flags(flag_values=flags.FLAGS,
                          argv: Sequence[str] | None = None) -> None:
  """--model_dir, --strategy, --tpu, --preset, --dataset, every alias and --config.

  Defaults are those of the --preset in `argv` (default sys.argv; see argv_preset),
  so --help (and --config_help) show what the run would use.
  """
  define_model_dir(flag_values)
  define_strategy_flags(flag_values)
  flags.DEFINE_string(
      "preset", configs.DEFAULTS["pretrain"],
      f"Starting config, one of {sorted(configs.PRESETS['pretrain'])}; the flags below "
      "override it.",
      flag_values=flag_values)
  flags.DEFINE_string(
      "dataset", None,
      "Pre-training images: 'fashion_mnist' (embedded), a TFDS name (e.g. "
      "imagenet2012, stl10), or an image folder as 'folder:/path' or a path. "
      "Default: the preset's.", flag_values=flag_values)
  preset = argv_preset("pretrain", argv)
  config = configs.get("pretrain", preset)
  flags.DEFINE_string("probe_source", config_flags.value_at(config, "probe.source"),
                      PROBE_SOURCE_HELP, flag_values=flag_values)
  config_flags.define_aliases(PRETRAIN_ALIASES, config, flag_values, preset)
  axes.define_prediction_lengths(flag_values)
  config_flags.define_config_flags(config, flag_values, preset)


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


def config_from_flags(flag_values=flags.FLAGS) -> PretrainConfig:
  """The preset, with the fields of every flag the user set replaced, then --config's.

  Raises ValueError with a clear message for an unknown preset, a bad --config or
  a config that cannot run (e.g. a grid too small for the prediction offsets).
  """
  config = configs.get("pretrain", flag_values.preset)
  changes = config_flags.alias_changes(PRETRAIN_ALIASES, PretrainConfig, flag_values)
  changes.update(axes.prediction_length_changes(flag_values))
  if flag_values["dataset"].present:
    changes.update(dataset_override(flag_values.dataset))
  if flag_values["probe_source"].present:
    changes.update(probe_source_override(flag_values.probe_source))
  probe_flags = [n for n in PROBE_FLAGS if flag_values[n].present] + [
      p for p in config_flags.given_paths(flag_values) if p.startswith("probe.")]
  other_data = any(changes.get(f"data.{k}", getattr(config.data, k))
                   != getattr(config.data, k) for k in ("source", "path"))
  if (flag_values["dataset"].present and other_data and not probe_flags
      and not config.probe.source):
    # The preset's probe read the preset's data; the new data may have no labels
    # (the probe is on by default only for the embedded Fashion-MNIST).
    changes["probe.every_steps"] = 0
  return config_flags.apply(config, changes, flag_values, PRETRAIN_ALIASES)



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


def make_strategy(flag_values=flags.FLAGS):
  """The tf.distribute strategy --strategy / --tpu ask for (ValueError if they clash)."""
  from cpc_tf import distribute
  check_strategy_flags(flag_values)
  return distribute.make_strategy(flag_values.strategy, flag_values.tpu)


def driver_config(config_from_flags, flag_values=flags.FLAGS):
  """The config of a multi-stage driver (launch/ablation.py, launch/study.py), once
  --output_dir and the strategy flags pass."""
  from cpc_tf import records
  records.check_writable(flag_values.output_dir, "--output_dir")
  config = config_from_flags(flag_values)
  check_strategy_flags(flag_values)
  return config
