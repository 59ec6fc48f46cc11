"""The v1 -> v2 ladder of ICLR 4.1 / Figure 3 as presets, the open readings, the axes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from cpc_tf.configs.schema import DIRECTIONS, PretrainConfig, replace


#
# Figure 3 adds one modification at a time to the original CPC. The caption's
# labels, in its order: BU (bottom-up predictions), HF (horizontal patch
# flips), LN (layer norm), RC (random colour dropping), TL (tuned prediction
# lengths), HP (horizontal predictions); then model capacity (ResNet-161),
# larger patches and further patch augmentation (named MC, LP, PA in the
# review of the published version) lead to `cpc_v2_paper`. Each rung is a
# preset that holds every rung before it; `LADDER_LABEL_FIELDS` lists the
# fields each label may change and tests/test_configs.py walks the ladder.

# Prediction-length readings (SPEC 7). Offset i in range(steps_to_ignore,
# steps_to_predict) predicts i + 1 rows ahead (the pseudocode's labels).
PREDICTION_LENGTHS = {
    "pseudocode": (2, 3),  # ICLR A.2 / supp. A defaults: i = 2 only, 3 rows ahead
    "text": (1, 3),  # ICLR 4.1 "k in {2,3}": 2 and 3 rows ahead
    "original": (1, 5),  # ICLR 4.1 "{2,...,5} as was used originally"
}

# Layer-norm readings (SPEC 7): EncoderConfig.norm values, cpc_tf.resnet builds both.
LAYER_NORM_READINGS = {
    "layer": "per position, over C (the package's reading: no statistic crosses positions)",
    "layer_example": "per example, over (H, W, C) (tf.contrib.layers.layer_norm's 2019 default)",
}


def prediction_lengths(reading: str) -> dict:
  """{"model.head.steps_to_ignore": ..., "model.head.steps_to_predict": ...} of a reading."""
  if reading not in PREDICTION_LENGTHS:
    raise ValueError(f"Unknown prediction-length reading {reading!r}; choose one of "
                     f"{sorted(PREDICTION_LENGTHS)}.")
  ignore, predict = PREDICTION_LENGTHS[reading]
  return {"model.head.steps_to_ignore": ignore, "model.head.steps_to_predict": predict}


@dataclass(frozen=True)
class Rung:
  """One bar of Figure 3: a preset made from the previous rung by `changes`."""

  name: str  # preset name
  label: str  # the paper's label
  changes: dict  # dotted PretrainConfig field -> value, applied to the previous rung
  paper: str  # what the texts report for this step


_GRID_FIELDS = ("model.grid.image_size", "model.grid.patch_size", "model.grid.stride",
                "model.grid.resize_to")
_SUPP_A_STEPS = ("augment.randaugment", "augment.elastic_p", "augment.histogram_p",
                 "augment.inception_color_p", "augment.grayscale_p")

# The fields each label names. A rung must change exactly these (a test checks).
LADDER_LABEL_FIELDS = {
    "+BU": ("model.head.directions",),
    "+HF": ("augment.flip_p",),
    "+LN": ("model.encoder.norm",),
    "+RC": ("augment.color_drop_p",),
    "+TL": ("model.head.steps_to_predict",),
    "+HP": ("model.head.directions",),
    "+MC": ("model.encoder.name",),
    "+LP": _GRID_FIELDS + ("augment.jitter_size",),
    "+PA": _SUPP_A_STEPS + ("data.pipeline",),
    "CPC v2": ("augment.color_drop_p", "augment.flip_p", "augment.jitter_size",
               "model.head.steps_to_ignore", "model.encoder.symmetric_padding"),
}

_CPC_V1_CHANGES = {
    "model.encoder.name": "resnet101_cpc_v1",  # ICLR 4.1: first 3 stacks of ResNet-101
    # Seeds silent; ICLR 4.1 measures LN against "architectures that use neither normalization".
    "model.encoder.norm": "none",
    # Seeds silent; arXiv v1 4.2 introduces symmetric padding as a change (zeros before).
    "model.encoder.symmetric_padding": False,
    "model.head.directions": ("down",),  # ICLR 4.1: context from above only
    **prediction_lengths("original"),  # ICLR 4.1: {2,...,5} originally
    # arXiv v1 3.1: 256 px image, 64 px patches, 32 px overlap: 7x7 grid, no crop.
    "model.grid.image_size": 256, "model.grid.patch_size": 64, "model.grid.stride": 32,
    "model.grid.resize_to": 256,
    # ICLR 4.1: the original jitters each patch; the size is arXiv v1 4.1's 56 of 64 px.
    "augment.jitter_size": 56,
    "augment.randaugment": False, "augment.elastic_p": 0.0, "augment.histogram_p": 0.0,
    "augment.inception_color_p": 0.0, "augment.grayscale_p": 0.0,
    "data.pipeline": "v1",
    # Seeds silent on v1's head and optimiser: supp. A's values, so no rung varies them.
}

LADDER = (
    Rung("cpc_v1", "CPC v1", _CPC_V1_CHANGES, "48.7% Top-1 (ICLR Table 1, Fig. 3)"),
    Rung("ladder_bu", "+BU", {"model.head.directions": ("down", "up")},
         "+2% for both models (ICLR 4.1)"),
    # p not stated ("randomly flip"): a fair coin.
    Rung("ladder_hf", "+HF", {"augment.flip_p": 0.5},
         "+1% small model only (ICLR 4.1)"),
    # Per position over C; --norm=layer_example for the per-example reading.
    Rung("ladder_ln", "+LN", {"model.encoder.norm": "layer"},
         "+1% small, +2.5% large model (ICLR 4.1)"),
    # "randomly drops two of the three colour channels in each patch": every patch.
    Rung("ladder_rc", "+RC", {"augment.color_drop_p": 1.0},
         "+1% small, +3% large model (ICLR 4.1)"),
    # The text's {2,3} (steps_to_ignore stays 1); CPC v2's last rung takes the pseudocode's.
    Rung("ladder_tl", "+TL", {"model.head.steps_to_predict": 3},
         "+1% large model (ICLR 4.1)"),
    Rung("ladder_hp", "+HP", {"model.head.directions": DIRECTIONS},
         "+1.5% large, -1% small model (ICLR 4.1)"),
    Rung("ladder_mc", "+MC", {"model.encoder.name": "resnet161"},
         "+5% with the original training, +10% with the new one (ICLR 4.1)"),
    # 80 px patches arrive with supp. A's geometry (300 -> 260 crop, stride 36, 6x6);
    # the jitter keeps arXiv v1's 56/64 fraction of the patch (70 of 80 px).
    Rung("ladder_lp", "+LP", {"model.grid.image_size": 260, "model.grid.patch_size": 80,
                              "model.grid.stride": 36, "model.grid.resize_to": 300,
                              "augment.jitter_size": 70},
         "+2% (review of the published version)"),
    Rung("ladder_pa", "+PA", {"augment.randaugment": True, "augment.elastic_p": 0.2,
                              "augment.histogram_p": 0.2, "augment.inception_color_p": 0.8,
                              "augment.grayscale_p": 0.25, "data.pipeline": "v2"},
         "+4.5% in all (review of the published version)"),
    # supp. A's final list has no colour dropping, flips or jitter; the pseudocode's
    # lengths; symmetric padding from arXiv v1 4.2 (SPEC 7: v2 = supp. A only).
    Rung("cpc_v2_paper", "CPC v2", {"augment.color_drop_p": 0.0, "augment.flip_p": 0.0,
                                    "augment.jitter_size": 0,
                                    "model.head.steps_to_ignore": 2,
                                    "model.encoder.symmetric_padding": True},
         "65.9% Top-1 (ICLR Table 1); 71.5% (review, published version)"),
)

LADDER_NAMES = tuple(r.name for r in LADDER)


def ladder_preset(name: str) -> PretrainConfig:
  """The config of rung `name`: PretrainConfig() with the changes of every rung up to it."""
  if name not in LADDER_NAMES:
    raise ValueError(f"{name!r} is not a rung of the ladder; choose one of {LADDER_NAMES}.")
  config = PretrainConfig()
  for rung in LADDER[:LADDER_NAMES.index(name) + 1]:
    config = replace(config, **rung.changes)
  return config


def cpc_v2_arxiv_v1() -> PretrainConfig:
  """The arXiv v1 model (4.1-4.2): ResNet-170 (= ResNet-161), layer norm, up + down.

  7x7 grid of 64 px patches (arXiv v1 3.1), colour dropping, horizontal flips
  and 56 px jitter, symmetric padding. Prediction lengths are not stated in
  arXiv v1; it predates TL, so the original {2,...,5}.
  """
  return replace(
      ladder_preset("cpc_v1"),
      **{"model.encoder.name": "resnet161", "model.encoder.norm": "layer",
         "model.encoder.symmetric_padding": True,  # arXiv v1 4.2
         "model.head.directions": ("down", "up"),  # separate context networks (arXiv v1 4.1)
         "augment.color_drop_p": 1.0, "augment.flip_p": 0.5})


def rung_preset(name: str):
  fn = lambda: ladder_preset(name)
  rung = LADDER[LADDER_NAMES.index(name)]
  fn.__name__ = name
  fn.__doc__ = f"Ladder rung {rung.label}: {rung.paper}."
  return fn


def ablation_axes() -> tuple[str, ...]:
  """Every dotted PretrainConfig field that is an ablation axis (SPEC 6).

  All leaves of `model` (but the remat memory switch) and `augment`, the pipeline
  and the negatives; a field
  added to those dataclasses becomes an axis, and tests/test_flags.py then
  requires a flag for it.
  """
  def leaves(value, prefix):
    for f in dataclasses.fields(value):
      child = getattr(value, f.name)
      if dataclasses.is_dataclass(child):
        yield from leaves(child, f"{prefix}{f.name}.")
      else:
        yield f"{prefix}{f.name}"

  base = PretrainConfig()
  not_axes = {"model.encoder.remat"}  # trades memory for time; computes the same step
  return (*(p for p in leaves(base.model, "model.") if p not in not_axes),
          *leaves(base.augment, "augment."), "data.pipeline", "cross_replica_negatives")
