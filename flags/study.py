"""absl flags of launch/study.py, and flags -> StudyConfig.

A study starts from `--preset` (a key of `cpc_tf.configs.PRESETS["study"]`); the
flags below replace its fields only when set. `--override=PATH=VALUE` sets any
StudyConfig field by its dotted path (e.g. pretrain.train_steps=1000,
efficient.frozen_steps=300); VALUE is read as JSON, else as a string.

`--dataset` (with `--image_size`, `--data_dir`, `--test_split`) points every
stage at one dataset (`cpc_tf.drivers.study_data.for_dataset`) before the other
flags and overrides apply, so those still win; launch/study.py then checks the
data (`study_data.check`) before any stage runs.
"""

from __future__ import annotations

from absl import flags

from cpc_tf import configs
from cpc_tf.configs import StudyConfig
from cpc_tf.drivers import study_data
from flags import ablation as ablation_flags
from flags import common


# flag -> (dotted StudyConfig field, help, allowed values or None).
# List flags arrive as strings; LIST_TYPES converts their items.
LIST_TYPES = {"label_fractions": float, "seeds": int}
# Flags that rewrite every stage's data (study_data.for_dataset), before the others.
DATA_FLAGS = ("dataset", "image_size", "data_dir", "test_split")
STUDY_OVERRIDES = {
    "label_fractions": ("label_fractions", "Label fractions of the few-label cells.", None),
    "seeds": ("seeds", "Subset seeds at the smallest label fraction (mean ± std).", None),
    "pretrain_steps": ("pretrain.train_steps", "Pre-training steps.", None),
}


def define_flags(flag_values=flags.FLAGS) -> None:
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
  preset = common.argv_preset("study")
  defaults = configs.get("study", preset)
  for name, (path, help_text, choices) in STUDY_OVERRIDES.items():
    common.define_flag(name, common.field_default(path, defaults),
                       f"{help_text} Overrides the preset; the default shown is "
                       f"--preset={preset}'s.", choices, flag_values)
  flags.DEFINE_multi_string(
      "override", [], "PATH=VALUE: set any StudyConfig field after the preset (e.g. "
      "pretrain.train_steps=1000, supervised.train_steps=500); VALUE is read as JSON, "
      "else as a string.", flag_values=flag_values)


def config_from_flags(flag_values=flags.FLAGS) -> StudyConfig:
  """The --preset with every set flag applied; ValueError for bad values."""
  config = configs.get("study", flag_values.preset)
  if any(flag_values[name].present for name in DATA_FLAGS):
    dataset = (flag_values.dataset if flag_values["dataset"].present
               else study_data.current_dataset(config))
    data_dir = (flag_values.data_dir if flag_values["data_dir"].present
                else config.pretrain.data.data_dir)
    config = study_data.for_dataset(config, dataset, flag_values.image_size,
                                    data_dir=data_dir, test_split=flag_values.test_split)
  changes = common.set_flag_changes(STUDY_OVERRIDES, flag_values)
  for name, kind in LIST_TYPES.items():
    path = STUDY_OVERRIDES[name][0]
    if path in changes:
      try:
        changes[path] = tuple(kind(v) for v in changes[path])
      except ValueError as e:
        raise ValueError(f"--{name}={','.join(changes[path])}: {e}; give a comma-separated "
                         "list, e.g. --label_fractions=0.01,0.1,1 --seeds=0,1,2.") from e
  for text in flag_values.override:
    path, value = ablation_flags.parse_override(text)
    changes[path] = value
  try:
    return configs.replace(config, **changes)
  except (AttributeError, TypeError) as e:
    raise ValueError(f"--override: {e}; paths are StudyConfig fields, e.g. "
                     "pretrain.train_steps or efficient.frozen_steps.") from e
