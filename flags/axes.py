"""Flags for every ablation axis of the v1 -> v2 study (SPEC 6, ICLR 4.1 / Figure 3).

An alias table (flags/config_flags.py: flag -> (dotted PretrainConfig field,
help)) that `flags.common.PRETRAIN_ALIASES` includes: types, allowed values and
defaults come from the dataclass fields, and a flag replaces its field only when set.
`configs.ablation_axes()` lists the fields that need a flag here; a test
compares the two. `--prediction_lengths` sets two fields at once by reading.
"""

from __future__ import annotations

from absl import flags

from cpc_tf import configs

_ICLR_PREDICTIONS = "ICLR 4.1 'Prediction lengths and directions'"
_SUPP_A = "supp. A step"
_V1 = "arXiv v1 4.1"

AXIS_ALIASES = {
    # Encoder.
    "encoder": ("model.encoder.name",
                "Encoder architecture (ICLR 4.1 'Model capacity': resnet101_cpc_v1 = first "
                "3 stacks of ResNet-101, resnet161 = its third stack grown to 46 blocks of "
                "4096 maps)."),
    "norm": ("model.encoder.norm",
             "Encoder normalisation (ICLR 4.1 'Layer normalization': batch norm lets "
             "patches communicate). Layer-norm readings (SPEC 7): " + "; ".join(
                 f"{k} = {v}" for k, v in configs.LAYER_NORM_READINGS.items()) + "."),
    "symmetric_padding": ("model.encoder.symmetric_padding",
                          "Mirror padding in every convolution, zeros when false "
                          "(arXiv v1 4.2: eases the patch -> whole-image shift)."),
    # Grid.
    "image_size": ("model.grid.image_size",
                   "Side of the crop cut into patches (supp. A: 260; arXiv v1 3.1: 256)."),
    "patch_size": ("model.grid.patch_size",
                   "Patch side in pixels (supp. A: 80; arXiv v1 3.1: 64; review "
                   "'larger patches')."),
    "stride": ("model.grid.stride", "Patch stride in pixels (supp. A: 36; arXiv v1: 32)."),
    "resize_to": ("model.grid.resize_to",
                  "Images are resized to this side, then randomly cropped to "
                  "--image_size (supp. A: 300)."),
    # CPC head.
    "directions": ("model.head.directions",
                   f"Prediction directions, comma-separated subset of {configs.DIRECTIONS} "
                   f"({_ICLR_PREDICTIONS}: BU adds up, HP adds right and left)."),
    "steps_to_ignore": ("model.head.steps_to_ignore",
                        "First offset i; offset i predicts i + 1 rows ahead (ICLR A.2 "
                        "pseudocode: 2). See --prediction_lengths."),
    "steps_to_predict": ("model.head.steps_to_predict",
                         "Offsets range(steps_to_ignore, steps_to_predict) (ICLR A.2 "
                         "pseudocode: 3). See --prediction_lengths."),
    "target_dim": ("model.head.target_dim", "Target projection depth (ICLR A.2: 64)."),
    "emb_scale": ("model.head.emb_scale", "Prediction scale (ICLR A.2: 0.1)."),
    "context_blocks": ("model.head.context.num_blocks",
                       "Residual blocks of the masked PixelCNN (ICLR A.2: 5)."),
    "context_dim": ("model.head.context.hidden_dim",
                    "Hidden maps of the masked PixelCNN (ICLR A.2: 256)."),
    # Per-patch augmentation.
    "randaugment": ("augment.randaugment",
                    f"{_SUPP_A} 1: random AutoAugment / RandAugment operations per patch."),
    "randaugment_num_ops": ("augment.randaugment_num_ops",
                            f"{_SUPP_A} 1: operations per patch (2)."),
    "randaugment_magnitude": ("augment.randaugment_magnitude",
                              f"{_SUPP_A} 1 magnitude on RandAugment's 0-10 scale (not "
                              "stated; 9 = Cubuk et al.'s ImageNet setting)."),
    "elastic_p": ("augment.elastic_p",
                  f"{_SUPP_A} 2: probability of elastic deformation and shear (0.2)."),
    "elastic_sigma": ("augment.elastic_sigma",
                      f"{_SUPP_A} 2: displacement std as a fraction of the patch (not "
                      "stated)."),
    "elastic_grid": ("augment.elastic_grid",
                     f"{_SUPP_A} 2: control-grid side of the displacement field (not "
                     "stated)."),
    "elastic_shear": ("augment.elastic_shear",
                      f"{_SUPP_A} 2: maximum shear per axis (not stated)."),
    "histogram_p": ("augment.histogram_p",
                    f"{_SUPP_A} 2: probability of the colour-histogram augmentation (0.2)."),
    "histogram_knots": ("augment.histogram_knots",
                        f"{_SUPP_A} 2: segments of the random monotone curve (not stated)."),
    "histogram_strength": ("augment.histogram_strength",
                           f"{_SUPP_A} 2: log-slope std of the curve (not stated)."),
    "inception_color_p": ("augment.inception_color_p",
                          f"{_SUPP_A} 3: probability of Inception colour augmentation (0.8)."),
    "color_brightness": ("augment.color_brightness",
                         f"{_SUPP_A} 3: maximum brightness delta (tf-slim's 32/255)."),
    "color_saturation": ("augment.color_saturation",
                         f"{_SUPP_A} 3: saturation factor range 1 +- s (tf-slim's 0.5)."),
    "color_hue": ("augment.color_hue", f"{_SUPP_A} 3: maximum hue delta (tf-slim's 0.2)."),
    "color_contrast": ("augment.color_contrast",
                       f"{_SUPP_A} 3: contrast factor range 1 +- c (tf-slim's 0.5)."),
    "grayscale_p": ("augment.grayscale_p", f"{_SUPP_A} 4: probability of grey-scale (0.25)."),
    "color_drop_p": ("augment.color_drop_p",
                     f"Probability of keeping 1 of 3 colour channels per patch ({_V1}; "
                     "ICLR 4.1 'RC')."),
    "flip_p": ("augment.flip_p",
               f"Probability of a horizontal patch flip ({_V1}; ICLR 4.1 'HF')."),
    "jitter_size": ("augment.jitter_size",
                    f"Per-patch spatial jitter: random crop of this side padded back; 0 = "
                    f"off ({_V1}: 56 of 64 px)."),
    "pipeline": ("data.pipeline",
                 "Pre-training recipe: v2 (supp. A steps 1-4) or v1 (arXiv v1 4.1 "
                 "colour drop / flip / jitter); the steps themselves are the flags above."),
}

PREDICTION_LENGTHS_FLAG = "prediction_lengths"


def define_prediction_lengths(flag_values=flags.FLAGS) -> None:
  readings = "; ".join(
      f"{k} = offsets {list(range(*v))}, i.e. {[i + 1 for i in range(*v)]} rows ahead"
      for k, v in configs.PREDICTION_LENGTHS.items())
  flags.DEFINE_enum(
      PREDICTION_LENGTHS_FLAG, None, sorted(configs.PREDICTION_LENGTHS),
      "Sets --steps_to_ignore and --steps_to_predict by reading (SPEC 7; ICLR A.2 "
      f"pseudocode vs ICLR 4.1 text 'k in {{2,3}}' vs the original {{2..5}}): {readings}. "
      "Default: the preset's.", flag_values=flag_values)


def prediction_length_changes(flag_values=flags.FLAGS) -> dict:
  """The changes --prediction_lengths asks for; refuses it next to the two step flags."""
  if not flag_values[PREDICTION_LENGTHS_FLAG].present:
    return {}
  both = [n for n in ("steps_to_ignore", "steps_to_predict") if flag_values[n].present]
  if both:
    raise ValueError(f"--prediction_lengths and --{both[0]} both set the prediction "
                     "offsets: give one of them.")
  return configs.prediction_lengths(flag_values[PREDICTION_LENGTHS_FLAG].value)
