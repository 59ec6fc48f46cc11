"""absl flags of launch/ablation.py, and flags -> AblationConfig.

A run starts from `--preset` (a key of `cpc_tf.configs.PRESETS["ablation"]`);
each flag below replaces its AblationConfig field only when set, with the
preset's value as the default shown by `--help`. `--override` changes any
PretrainConfig field of every run, e.g. --override=model.encoder.name=small.
"""

from __future__ import annotations

import json

from absl import flags

from cpc_tf import configs
from cpc_tf.configs import AblationConfig
from flags import common


# flag -> (dotted AblationConfig field, help, allowed values or None).
ABLATION_OVERRIDES = {
    "presets": ("presets", "Pre-training presets to compare, in bar order (default: the "
                "ladder of ICLR Figure 3, cpc_v1 ... cpc_v2_paper).", None),
    "batch_size": ("batch_size", "Global pre-training batch of every run.", None),
    "train_steps": ("train_steps", "Pre-training steps of every run (the same budget).",
                    None),
    "data_dir": ("data.data_dir", "TFDS data directory (TFDS datasets only).", None),
    "max_examples": ("data.max_examples", "Pre-train on the first N examples; 0 = all.",
                     None),
    "seed": ("seed", "Seed of every pre-training pipeline.", None),
    "linear_train_steps": ("linear.train_steps", "Linear-protocol steps (supp. B).", None),
    "linear_batch_size": ("linear.batch_size", "Linear-protocol global batch.", None),
    "linear_max_examples": ("linear.data.max_examples",
                            "Linear training on the first N labelled examples; 0 = all.",
                            None),
    "test_split": ("linear.test_split", "Split the linear accuracy is reported on.", None),
}


def define_flags(flag_values=flags.FLAGS) -> None:
  flags.DEFINE_string("output_dir", None, "Where every run, the table and the chart go. "
                      "Rerunning the same command resumes.", flag_values=flag_values)
  flags.mark_flag_as_required("output_dir", flag_values=flag_values)
  common.define_strategy_flags(flag_values)
  flags.DEFINE_string(
      "preset", configs.DEFAULTS["ablation"],
      f"Starting ablation config, one of {sorted(configs.PRESETS['ablation'])}; the flags "
      "below override it.", flag_values=flag_values)
  flags.DEFINE_string(
      "dataset", None, "Images of pre-training and of the linear protocol: "
      "'fashion_mnist', a TFDS name or an image folder ('folder:/path'; class "
      "sub-folders for the labels). Default: the preset's.", flag_values=flag_values)
  preset = common.argv_preset("ablation")
  defaults = configs.get("ablation", preset)
  for name, (path, help_text, choices) in ABLATION_OVERRIDES.items():
    common.define_flag(name, common.field_default(path, defaults),
                       f"{help_text} Overrides the preset; the default shown is "
                       f"--preset={preset}'s.", choices, flag_values)
  flags.DEFINE_multi_string(
      "override", [], "PATH=VALUE: set a PretrainConfig field in every run after the "
      "preset (e.g. model.encoder.name=small, optimizer.learning_rate=0.001, "
      "model.head.directions='[\"down\"]'); VALUE is read as JSON, else as a string.",
      flag_values=flag_values)


def parse_override(text: str) -> tuple[str, object]:
  """"path=value" -> (path, value); the value is JSON if it parses, else the string."""
  path, sep, raw = text.partition("=")
  if not sep or not path:
    raise ValueError(f"--override={text}: write PATH=VALUE, e.g. "
                     "--override=model.encoder.name=small.")
  try:
    value = json.loads(raw)
  except json.JSONDecodeError:
    value = raw
  return path, tuple(value) if isinstance(value, list) else value


def config_from_flags(flag_values=flags.FLAGS) -> AblationConfig:
  """The --preset with every set flag applied; ValueError for bad values."""
  config = configs.get("ablation", flag_values.preset)
  changes = common.set_flag_changes(ABLATION_OVERRIDES, flag_values)
  if flag_values["dataset"].present:
    for path, value in common.dataset_override(flag_values.dataset).items():
      changes[path] = value
      changes[f"linear.{path}"] = value
  overrides = tuple(parse_override(t) for t in flag_values.override)
  if overrides:
    changes["overrides"] = config.overrides + overrides
  return configs.replace(config, **changes)
