"""flags/common.py: defaults from the dataclasses, changes only for flags the user set."""

import dataclasses

import pytest
from absl import flags as absl_flags

from cpc_tf import configs
from cpc_tf.configs import PretrainConfig
from flags import axes, common, config_flags


def parse(*args):
  values = absl_flags.FlagValues()
  common.define_pretrain_flags(values)
  values(config_flags.rewrite(["prog", "--model_dir=/tmp/x", *args]))
  return values


def _defaults_match(values, config):
  for name, (path, _) in common.PRETRAIN_ALIASES.items():
    default = values[name].default
    default = tuple(default) if isinstance(default, list) else default  # list flags
    assert default == config_flags.value_at(config, path), name


def test_flag_defaults_come_from_the_chosen_preset():
  values = parse()
  assert values.preset == "fashion_mnist_small"
  _defaults_match(values, configs.fashion_mnist_small())
  values = absl_flags.FlagValues()
  common.define_pretrain_flags(values, argv=["--preset", "tiny"])
  _defaults_match(values, configs.tiny())
  values = absl_flags.FlagValues()
  common.define_pretrain_flags(values, argv=["--preset=no_such_preset"])
  _defaults_match(values, configs.fashion_mnist_small())


def test_help_shows_the_presets_values():
  import os
  import subprocess
  import sys
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=root)
  text = subprocess.run([sys.executable, "-m", "launch.pretrain", "--preset=tiny", "--help"],
                        cwd=root, env=env, capture_output=True, text=True,
                        timeout=300).stdout
  assert "--preset=tiny's" in text
  batch = text[text.index("--batch_size:"):]
  assert batch[batch.index("(default: "):].startswith(
      f"(default: '{configs.tiny().batch_size}')")
  assert configs.tiny().batch_size != PretrainConfig().batch_size


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


def test_every_ablation_axis_has_a_flag():
  """SPEC 6: every axis of the v1 -> v2 study is a flag of launch/pretrain.py."""
  flagged = {path for path, _ in common.PRETRAIN_ALIASES.values()}
  missing = set(configs.ablation_axes()) - flagged
  assert not missing, f"ablation-axis fields without a flag: {sorted(missing)}"


def test_axis_comparison_sees_a_new_field(monkeypatch):
  """The check above fails when a config field is added without a flag."""
  import dataclasses
  extended = dataclasses.make_dataclass(
      "AugmentConfig", [("new_axis_p", float, dataclasses.field(default=0.0))],
      bases=(configs.AugmentConfig,), frozen=True)
  original = configs.PretrainConfig
  patched = dataclasses.make_dataclass(
      "PretrainConfig", [("augment", extended, dataclasses.field(default_factory=extended))],
      bases=(original,), frozen=True)
  monkeypatch.setattr(configs.ladder, "PretrainConfig", patched)  # ablation_axes reads it
  flagged = {path for path, _ in common.PRETRAIN_ALIASES.values()}
  assert set(configs.ablation_axes()) - flagged == {"augment.new_axis_p"}


def test_axis_help_cites_a_source():
  for name, (_, help_text) in axes.AXIS_ALIASES.items():
    assert any(s in help_text for s in ("ICLR", "supp.", "arXiv", "review")), name


def test_axis_flags_override_their_fields():
  config = common.config_from_flags(parse(
      "--preset=cpc_v1", "--directions=down,up", "--norm=layer_example", "--nosymmetric_padding",
      "--patch_size=80", "--stride=36", "--image_size=260", "--resize_to=300",
      "--color_drop_p=1", "--pipeline=v2", "--encoder=resnet161", "--context_blocks=2"))
  want = configs.replace(configs.preset("cpc_v1"), **{
      "model.head.directions": ("down", "up"), "model.encoder.norm": "layer_example",
      "model.encoder.symmetric_padding": False, "model.grid.patch_size": 80,
      "model.grid.stride": 36, "model.grid.image_size": 260, "model.grid.resize_to": 300,
      "augment.color_drop_p": 1.0, "data.pipeline": "v2", "model.encoder.name": "resnet161",
      "model.head.context.num_blocks": 2})
  assert config == want


@pytest.mark.parametrize("reading, ignore, predict", [
    ("pseudocode", 2, 3), ("text", 1, 3), ("original", 1, 5)])
def test_prediction_lengths_flag(reading, ignore, predict):
  head = common.config_from_flags(parse(
      "--preset=cpc_v2_paper", f"--prediction_lengths={reading}")).model.head
  assert (head.steps_to_ignore, head.steps_to_predict) == (ignore, predict)


def test_prediction_lengths_flag_refuses_the_step_flags_beside_it():
  with pytest.raises(ValueError, match="--prediction_lengths and --steps_to_ignore"):
    common.config_from_flags(parse("--prediction_lengths=text", "--steps_to_ignore=0"))


def test_bad_axis_values_are_clear_errors():
  with pytest.raises(ValueError, match="directions"):
    common.config_from_flags(parse("--directions=down,sideways"))
  with pytest.raises(absl_flags.IllegalFlagValueError):
    parse("--norm=group")


def test_probe_flags_override_their_fields():
  config = common.config_from_flags(parse(
      "--preset=tiny", "--probe_every=5", "--probe_k=3", "--probe_split=test",
      "--probe_memory_size=40", "--probe_query_size=20", "--probe_source=folder:/data/lab"))
  assert config.probe == configs.ProbeConfig(every_steps=5, k=3, split="test",
                                             memory_size=40, query_size=20,
                                             source="folder", path="/data/lab")
  assert common.config_from_flags(parse("--probe_source=stl10")).probe.source == "stl10"


def test_other_data_switches_the_presets_probe_off_unless_a_probe_flag_is_set():
  preset = configs.fashion_mnist_small().probe
  assert common.config_from_flags(parse()).probe == preset
  assert common.config_from_flags(parse("--dataset=fashion_mnist")).probe == preset
  assert common.config_from_flags(parse("--dataset=stl10")).probe.every_steps == 0
  assert common.config_from_flags(parse("--dataset=/data/x")).probe.every_steps == 0
  kept = common.config_from_flags(parse("--dataset=stl10", "--probe_split=train"))
  assert kept.probe == dataclasses.replace(preset, split="train")


def test_bad_probe_flags_are_clear_errors():
  with pytest.raises(ValueError, match="probe k=0"):
    common.config_from_flags(parse("--probe_k=0"))
  with pytest.raises(ValueError, match="--probe_source=folder: needs a path"):
    common.config_from_flags(parse("--probe_source=folder:"))
