"""Configs: presets, validation, dotted replace, JSON round trip."""

import dataclasses
import json

import pytest

from cpc_tf import configs


@pytest.mark.parametrize("name", sorted(configs.PRESETS["pretrain"]))
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


def _leaves(value, prefix=""):
  """{dotted field: value} of every leaf of a config dataclass."""
  out = {}
  for f in dataclasses.fields(value):
    child = getattr(value, f.name)
    if dataclasses.is_dataclass(child):
      out.update(_leaves(child, f"{prefix}{f.name}."))
    else:
      out[f"{prefix}{f.name}"] = child
  return out


def test_ladder_rungs_change_exactly_the_fields_their_labels_name():
  """ICLR Fig. 3: each rung adds one modification to the one before it."""
  names = [r.name for r in configs.LADDER]
  assert names[0] == "cpc_v1" and names[-1] == "cpc_v2_paper"
  assert [r.label for r in configs.LADDER[1:]] == [
      "+BU", "+HF", "+LN", "+RC", "+TL", "+HP", "+MC", "+LP", "+PA", "CPC v2"]
  previous = _leaves(configs.preset("cpc_v1"))
  for rung in configs.LADDER[1:]:
    current = _leaves(configs.preset(rung.name))
    changed = {k for k in current if current[k] != previous[k]}
    assert changed == set(configs.LADDER_LABEL_FIELDS[rung.label]), rung.name
    previous = current
  assert configs.ladder_preset("cpc_v2_paper") == configs.cpc_v2_paper()


def test_ladder_directions_and_lengths():
  d = {r.name: configs.preset(r.name).model.head for r in configs.LADDER}
  assert [len(d[n].directions) for n in configs.LADDER_NAMES] == [1, 2, 2, 2, 2, 2, 4, 4, 4,
                                                                  4, 4]
  # Rows ahead = offset + 1: original {2..5}, text {2,3}, pseudocode {3}.
  ahead = lambda h: [i + 1 for i in range(h.steps_to_ignore, h.steps_to_predict)]
  assert ahead(d["cpc_v1"]) == [2, 3, 4, 5]
  assert ahead(d["ladder_tl"]) == [2, 3]
  assert ahead(d["cpc_v2_paper"]) == [3]


def test_cpc_v1_is_the_original_cpc():
  c = configs.preset("cpc_v1")
  assert c.model.grid.grid_size == 7 and c.model.grid.patch_size == 64
  assert (c.model.encoder.name, c.model.encoder.norm) == ("resnet101_cpc_v1", "none")
  assert c.model.head.directions == ("down",)
  assert c.augment.jitter_size == 56 and c.augment.color_drop_p == c.augment.flip_p == 0
  assert not c.augment.randaugment and c.data.pipeline == "v1"


def test_arxiv_v1_preset():
  c = configs.preset("cpc_v2_arxiv_v1")
  assert (c.model.encoder.name, c.model.encoder.norm, c.model.encoder.symmetric_padding) == (
      "resnet161", "layer", True)
  assert c.model.head.directions == ("down", "up") and c.model.grid.grid_size == 7
  assert (c.augment.color_drop_p, c.augment.flip_p, c.augment.jitter_size) == (1.0, 0.5, 56)


def test_removed_v1_preset_names_its_replacements():
  with pytest.raises(ValueError, match="'cpc_v1_paper' was removed.*'cpc_v1'.*"
                     "'cpc_v2_arxiv_v1'"):
    configs.preset("cpc_v1_paper")


def test_prediction_length_readings():
  assert configs.prediction_lengths("pseudocode") == {
      "model.head.steps_to_ignore": 2, "model.head.steps_to_predict": 3}
  assert configs.prediction_lengths("text") == {
      "model.head.steps_to_ignore": 1, "model.head.steps_to_predict": 3}
  with pytest.raises(ValueError, match="Unknown prediction-length reading 'paper'"):
    configs.prediction_lengths("paper")


def test_ablation_presets_and_checks():
  for name in configs.ABLATION_PRESETS:
    config = configs.ablation_preset(name)
    assert all(p in configs.PRESETS["pretrain"] for p in config.presets)
  with pytest.raises(ValueError, match="unknown: \\['nope'\\]"):
    configs.AblationConfig(presets=("cpc_v1", "nope"))
  with pytest.raises(ValueError, match="train_steps=0"):
    configs.AblationConfig(train_steps=0)


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
  assert configs.EncoderConfig(norm="layer_example").norm == "layer_example"


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
  # SPEC 7: supp. C.1's decay read as TF1's L2 term by default, decoupled on request.
  assert efficient.weight_decay_mode == configs.supervised_paper().weight_decay_mode == "l2"
  for cls in (configs.EfficientConfig, configs.SupervisedConfig):
    assert cls(weight_decay_mode="decoupled").weight_decay_mode == "decoupled"
    with pytest.raises(ValueError, match="weight_decay_mode='adamw'; choose one of"):
      cls(weight_decay_mode="adamw")


def test_the_study_presets_resnet_arms_get_the_same_budgets_and_patience():
  study = configs.study_preset("study_fashion_mnist")
  efficient, supervised = study.efficient, study.supervised
  assert efficient.patience == supervised.patience == 10
  assert efficient.frozen_epochs == efficient.finetune_epochs == supervised.train_epochs
  assert efficient.frozen_steps == efficient.finetune_steps == supervised.train_steps
  assert efficient.eval_every == supervised.eval_every


def test_the_uncapped_study_lifts_the_step_caps_and_nothing_else():
  base = configs.study_preset("study_fashion_mnist")
  uncapped = configs.study_preset("study_fashion_mnist_uncapped")
  caps = ("efficient.frozen_steps", "efficient.finetune_steps", "supervised.train_steps")
  assert configs.replace(uncapped, **{c: base.efficient.frozen_steps for c in caps}) == base
  # The preset's epochs of all 59,500 labelled images stay under every lifted cap, and
  # of the 595 images at 1% under the default's cap: those cells are the same in both.
  epochs, batch = base.supervised.train_epochs, base.supervised.hparams.batch_per_replica
  assert min(uncapped.efficient.frozen_steps, uncapped.efficient.finetune_steps,
             uncapped.supervised.train_steps) >= epochs * -(-59_500 // batch)
  assert epochs * -(-595 // batch) <= base.supervised.train_steps
  assert not uncapped.smoke


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


def test_grid_crop_larger_than_the_resized_image_is_refused_at_build_time():
  """Issue 9: the README's one-field example (model.grid.image_size=64 on a 32 px
  preset) failed deep inside tf.data; now the config names both fields."""
  with pytest.raises(ValueError, match="image_size=64 exceeds grid.resize_to=32"):
    configs.replace(configs.tiny(), **{"model.grid.image_size": 64})
  grid = configs.replace(configs.tiny(), **{"model.grid.image_size": 64,
                                            "model.grid.resize_to": 64}).model.grid
  assert grid.grid_size == 8
  with pytest.raises(ValueError, match="grid_stride=-1"):
    configs.LinearEvalConfig(grid_stride=-1)
