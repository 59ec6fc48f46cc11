"""absl flags of launch/ablation.py, and flags -> AblationConfig.

A run starts from `--preset` (a key of `cpc_tf.configs.PRESETS["ablation"]`);
each flag of ABLATION_ALIASES replaces its AblationConfig field only when set,
with the preset's value as the default shown by `--help`, and
--config.PATH=VALUE sets any AblationConfig field (flags/config_flags.py).
`--override=PATH=VALUE` changes a PretrainConfig field of every run, e.g.
--override=model.encoder.name=small; VALUE is read by that field's type.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags

from cpc_tf import configs
from cpc_tf.configs import AblationConfig
from flags import common, config_flags


# flag -> (dotted AblationConfig field, help): a flags/config_flags.py alias table.
ABLATION_ALIASES = {
    "presets": ("presets", "Pre-training presets to compare, in bar order (default: the "
                "ladder of ICLR Figure 3, cpc_v1 ... cpc_v2_paper)."),
    "batch_size": ("batch_size", "Global pre-training batch of every run."),
    "train_steps": ("train_steps", "Pre-training steps of every run (the same budget)."),
    "data_dir": ("data.data_dir", "TFDS data directory (TFDS datasets only)."),
    "max_examples": ("data.max_examples", "Pre-train on the first N examples; 0 = all."),
    "seed": ("seed", "Seed of every pre-training pipeline."),
    "linear_train_steps": ("linear.train_steps", "Linear-protocol steps (supp. B)."),
    "linear_batch_size": ("linear.batch_size", "Linear-protocol global batch."),
    "linear_max_examples": ("linear.data.max_examples",
                            "Linear training on the first N labelled examples; 0 = all."),
    "test_split": ("linear.test_split", "Split the linear accuracy is reported on."),
}


def define_flags(flag_values=flags.FLAGS, argv: Sequence[str] | None = None) -> None:
  """The ablation's flags; defaults those of the --preset in `argv` (default sys.argv)."""
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
  preset = common.argv_preset("ablation", argv)
  defaults = configs.get("ablation", preset)
  config_flags.define_aliases(ABLATION_ALIASES, defaults, flag_values, preset)
  config_flags.define_config_flags(defaults, flag_values, preset)
  flags.DEFINE_multi_string(
      "override", [], "PATH=VALUE: set a PretrainConfig field in every run after the "
      "preset (e.g. model.encoder.name=small, optimizer.learning_rate=0.001, "
      "model.head.directions=down,up); VALUE is read by the field's type, as "
      "launch/pretrain.py --config_help lists them.", flag_values=flag_values)


def parse_override(text: str) -> tuple[str, object]:
  """"path=value" -> (path, value read by the PretrainConfig field's type)."""
  return config_flags.parse_entry(configs.PretrainConfig, text, f"--override={text}")


def config_from_flags(flag_values=flags.FLAGS) -> AblationConfig:
  """The --preset with every set flag applied, then --config's; ValueError for bad values."""
  config = configs.get("ablation", flag_values.preset)
  changes = config_flags.alias_changes(ABLATION_ALIASES, AblationConfig, flag_values)
  if flag_values["dataset"].present:
    for path, value in common.dataset_override(flag_values.dataset).items():
      changes[path] = value
      changes[f"linear.{path}"] = value
  overrides = tuple(parse_override(t) for t in flag_values.override)
  if overrides:
    changes["overrides"] = config.overrides + overrides
  return config_flags.apply(config, changes, flag_values, ABLATION_ALIASES)
