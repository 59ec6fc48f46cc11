"""flags/common.py: defaults from the dataclasses, overrides only for flags the user set."""

import pytest
from absl import flags as absl_flags

from cpc_tf import configs
from cpc_tf.configs import PretrainConfig
from flags import common


def parse(*args):
  values = absl_flags.FlagValues()
  common.define_pretrain_flags(values)
  values(["prog", "--model_dir=/tmp/x", *args])
  return values


def test_flag_defaults_come_from_the_dataclass_fields():
  values = parse()
  defaults = PretrainConfig()
  for name, (path, _, _) in common.PRETRAIN_OVERRIDES.items():
    assert values[name].default == common.field_default(path, defaults), name
  assert values.preset == "fashion_mnist_small"


def test_unset_flags_keep_the_preset():
  assert common.config_from_flags(parse("--preset=tiny")) == configs.tiny()
  assert common.config_from_flags(parse()) == configs.fashion_mnist_small()


def test_set_flags_override_only_their_field():
  config = common.config_from_flags(parse(
      "--preset=tiny", "--batch_size=8", "--learning_rate=0.5", "--nocross_replica_negatives",
      "--precision=mixed_bfloat16", "--steps_per_loop=3", "--lr_decay=cosine"))
  want = configs.replace(configs.tiny(), batch_size=8, **{
      "optimizer.learning_rate": 0.5, "optimizer.decay": "cosine"},
      cross_replica_negatives=False, precision="mixed_bfloat16", steps_per_loop=3)
  assert config == want


@pytest.mark.parametrize("value, source, path", [
    ("stl10", "stl10", None),
    ("imagenet2012_subset/1pct", "imagenet2012_subset/1pct", None),
    ("folder:/data/images", "folder", "/data/images"),
    ("/data/images", "folder", "/data/images"),
])
def test_dataset_flag(value, source, path):
  config = common.config_from_flags(parse("--preset=tiny", f"--dataset={value}"))
  assert config.data.source == source
  assert config.data.path == (path if path else configs.tiny().data.path)


def test_unknown_preset_and_tpu_without_tpu_strategy_are_refused():
  with pytest.raises(ValueError, match="Unknown preset 'nope'"):
    common.config_from_flags(parse("--preset=nope"))
  with pytest.raises(ValueError, match="needs --strategy=tpu"):
    common.check_strategy_flags(parse("--tpu=x"))
  common.check_strategy_flags(parse("--tpu=x", "--strategy=tpu"))


def test_required_model_dir():
  values = absl_flags.FlagValues()
  common.define_pretrain_flags(values)
  with pytest.raises(absl_flags.IllegalFlagValueError):
    values(["prog"])
    values.validate_all_flags()
