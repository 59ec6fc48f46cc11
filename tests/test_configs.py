"""Configs: presets, validation, dotted replace, JSON round trip."""

import json

import pytest

from cpc_tf import configs


@pytest.mark.parametrize("name", sorted(configs.PRESETS))
def test_presets_are_consistent(name):
  config = configs.preset(name)
  configs.ModelConfig(**vars(config.model))  # validated in __post_init__
  assert configs.from_dict(configs.PretrainConfig,
                           json.loads(json.dumps(configs.to_dict(config)))) == config


def test_paper_preset_values():
  c = configs.cpc_v2_paper()
  assert (c.model.grid.resize_to, c.model.grid.image_size, c.model.grid.patch_size,
          c.model.grid.stride, c.model.grid.grid_size) == (300, 260, 80, 36, 6)
  assert (c.model.head.target_dim, c.model.head.emb_scale, c.model.head.steps_to_ignore,
          c.model.head.steps_to_predict) == (64, 0.1, 2, 3)
  assert c.model.head.directions == ("down", "up", "right", "left")
  assert (c.model.head.context.num_blocks, c.model.head.context.hidden_dim) == (5, 256)
  assert (c.model.encoder.name, c.model.encoder.norm, c.model.encoder.symmetric_padding) == (
      "resnet161", "layer", True)
  o = c.optimizer
  assert (o.learning_rate, o.beta_1, o.beta_2, o.epsilon, o.clip_norm, o.polyak_decay) == (
      4e-4, 0.8, 0.999, 1e-8, 0.01, 0.9999)
  assert (c.batch_size, c.epochs) == (512, 200)
  a = c.augment
  assert (a.randaugment_num_ops, a.elastic_p, a.histogram_p, a.inception_color_p,
          a.grayscale_p) == (2, 0.2, 0.2, 0.8, 0.25)


def test_v1_preset():
  c = configs.cpc_v1_paper()
  assert c.model.grid.grid_size == 7 and c.model.grid.patch_size == 64
  assert c.model.encoder.name == "resnet101_cpc_v1"
  assert c.model.head.directions == ("down",)


def test_dotted_replace():
  c = configs.replace(configs.tiny(), batch_size=8, **{"model.head.target_dim": 5,
                                                        "model.grid.stride": 4})
  assert (c.batch_size, c.model.head.target_dim, c.model.grid.stride) == (8, 5, 4)
  assert c.model.encoder == configs.tiny().model.encoder


@pytest.mark.parametrize("kwargs,match", [
    ({"directions": ("down", "sideways")}, "directions"),
    ({"directions": ()}, "directions"),
    ({"steps_to_ignore": 3, "steps_to_predict": 3}, "steps_to_ignore"),
])
def test_bad_head_configs(kwargs, match):
  with pytest.raises(ValueError, match=match):
    configs.HeadConfig(**kwargs)


def test_unknown_preset_and_norm():
  with pytest.raises(ValueError, match="Unknown preset"):
    configs.preset("cpc_v3")
  with pytest.raises(ValueError, match="Unknown norm"):
    configs.EncoderConfig(norm="group")


def test_from_dict_rejects_unknown_fields():
  with pytest.raises(ValueError, match="Unknown field 'colour'"):
    configs.from_dict(configs.AugmentConfig, {"colour": 1})


@pytest.mark.parametrize("protocol, name", [
    (p, n) for p, presets in configs.EVAL_PRESETS.items() for n in presets])
def test_eval_presets_round_trip(protocol, name):
  config = configs.eval_preset(protocol, name)
  assert configs.from_dict(type(config), json.loads(json.dumps(configs.to_dict(config)))) \
      == config


def test_paper_values_of_the_evaluation_configs():
  linear = configs.linear_eval_paper()
  assert (linear.learning_rate, linear.batch_size) == (5e-4, 512)  # supp. B
  efficient = configs.efficient_paper()
  assert (efficient.classifier.blocks, efficient.classifier.width,
          efficient.classifier.bottleneck) == (11, 4096, 1024)  # supp. C.2
  assert efficient.image_size == 224 and efficient.subset.validation_size == 10_000
  assert efficient.sweep.size == 0 and efficient.momentum == 0.9
  assert configs.supervised_paper().architecture == "resnet50_v2"
  with pytest.raises(ValueError, match="Unknown efficient preset 'nope'"):
    configs.eval_preset("efficient", "nope")
  with pytest.raises(ValueError, match="dropout=1.0"):
    configs.HParams(dropout=1.0)


def test_configs_validate_themselves_when_built():
  with pytest.raises(ValueError, match="too small for steps_to_predict"):
    configs.ModelConfig(grid=configs.GridConfig(image_size=32, patch_size=16, stride=16))
  with pytest.raises(ValueError, match="precision='float8'"):
    configs.PretrainConfig(precision="float8")
  with pytest.raises(ValueError, match="checkpoint_every=0"):
    configs.PretrainConfig(checkpoint_every=0)
  with pytest.raises(ValueError, match="clip_norm=0"):
    configs.OptimizerConfig(clip_norm=0.0)
  with pytest.raises(ValueError, match="pipeline='v3'"):
    configs.DataConfig(pipeline="v3")
