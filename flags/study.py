"""absl flags of launch/study.py, and flags -> StudyConfig.

A study starts from `--preset` (a key of `cpc_tf.configs.PRESETS["study"]`); the
flags of STUDY_ALIASES replace their fields only when set. --config.PATH=VALUE
sets any StudyConfig field by its dotted path (e.g.
--config.pretrain.train_steps=1000 --config.efficient.frozen_steps=300), VALUE
read by the field's type (flags/config_flags.py); `--override=PATH=VALUE` is
another spelling of it, which the study's messages use.

`--dataset` (with `--image_size`, `--data_dir`, `--test_split`) points every
stage at one dataset (`cpc_tf.drivers.study_data.for_dataset`) before the other
flags and overrides apply, so those still win; launch/study.py then checks the
data (`study_data.check`) before any stage runs.
"""

from __future__ import annotations

from typing import Sequence

from absl import flags

from cpc_tf import configs
from cpc_tf.configs import StudyConfig
from cpc_tf.drivers import study_data
from flags import common, config_flags

# Flags that rewrite every stage's data (study_data.for_dataset), before the others.
DATA_FLAGS = ("dataset", "image_size", "data_dir", "test_split")
OVERRIDE_FLAG = "override"
# flag -> (dotted StudyConfig field, help): a flags/config_flags.py alias table.
STUDY_ALIASES = {
    "label_fractions": ("label_fractions", "Label fractions of the few-label cells."),
    "seeds": ("seeds", "Subset seeds at the smallest label fraction (mean ± std)."),
    "pretrain_steps": ("pretrain.train_steps", "Pre-training steps."),
}


def define_flags(flag_values=flags.FLAGS, argv: Sequence[str] | None = None) -> None:
  """The study's flags; defaults those of the --preset in `argv` (default sys.argv)."""
  flags.DEFINE_string("output_dir", None, "Where every stage, the report and the plot go. "
                      "Rerunning the same command resumes.", flag_values=flag_values)
  flags.mark_flag_as_required("output_dir", flag_values=flag_values)
  common.define_strategy_flags(flag_values)
  flags.DEFINE_string("preset", configs.DEFAULTS["study"],
                      f"Starting study config, one of {sorted(configs.PRESETS['study'])}; the "
                      "flags below override it.", flag_values=flag_values)
  flags.DEFINE_string(
      "dataset", None, "Labelled images for every stage: an image folder as "
      "'folder:/path' (one sub-folder per class, optionally inside train/ and test/; "
      "without test/ a seeded 10% of each class is held out as the test split), a TFDS "
      "name (e.g. cifar10; --data_dir), or 'fashion_mnist'. Default: the preset's.",
      flag_values=flag_values)
  flags.DEFINE_integer(
      "image_size", None, "Side in pixels the classifiers see; pre-training's crop is "
      "the largest the preset's patches and stride tile within it. Default: the "
      "preset's (images are resized to it).", flag_values=flag_values)
  flags.DEFINE_string("data_dir", None, "TFDS data directory (TFDS --dataset only).",
                      flag_values=flag_values)
  flags.DEFINE_string(
      "test_split", None, f"Split every protocol tests on (default "
      f"'{study_data.DEFAULT_TEST_SPLIT}': an image folder's held-out split; "
      "imagenet2012: validation). Never a training split.", flag_values=flag_values)
  preset = common.argv_preset("study", argv)
  defaults = configs.get("study", preset)
  config_flags.define_aliases(STUDY_ALIASES, defaults, flag_values, preset)
  config_flags.define_config_flags(defaults, flag_values, preset)
  flags.DEFINE_multi_string(
      OVERRIDE_FLAG, [], "PATH=VALUE: another spelling of --config.PATH=VALUE (e.g. "
      "--override=pretrain.train_steps=1000), applied after it.", flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> StudyConfig:
  """The --preset, --dataset rewriting, the set flags, then --config / --override.

  ValueError for bad values.
  """
  config = configs.get("study", flag_values.preset)
  if any(flag_values[name].present for name in DATA_FLAGS):
    dataset = (flag_values.dataset if flag_values["dataset"].present
               else study_data.current_dataset(config))
    data_dir = (flag_values.data_dir if flag_values["data_dir"].present
                else config.pretrain.data.data_dir)
    config = study_data.for_dataset(config, dataset, flag_values.image_size,
                                    data_dir=data_dir, test_split=flag_values.test_split)
  changes = config_flags.alias_changes(STUDY_ALIASES, StudyConfig, flag_values)
  overrides = [(f"--{OVERRIDE_FLAG}=", text) for text in flag_values[OVERRIDE_FLAG].value]
  return config_flags.apply(config, changes, flag_values, STUDY_ALIASES, extra=overrides)
