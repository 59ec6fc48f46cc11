"""Per-patch and per-image augmentations (supp. A, supp. C, ICLR 4.3, arXiv v1 4.1).

Glossary: N patches, P patch size, H/W image height / width, C = 3 channels,
K boxes. Images are float32 RGB in [0, 1]; seeds are int32/int64 [2] tensors
for the stateless RNG, so every result is reproducible under a fixed seed.

Modules, one concept each:
  ops          the AutoAugment / RandAugment op set, batched, per-patch parameters
  randaugment  supp. A step 1: two random ops per patch
  elastic      supp. A step 2: elastic deformation and shearing
  color        supp. A steps 2-4: colour histogram, Inception colour, grey-scale;
               v1 colour dropping (and its fixed-channel form for test patches)
  v1           v1-era horizontal flip and spatial jitter (and its centred
               counterpart for test patches)
  crops        Inception random-sized crop, evaluation centre crop
  boxes        detection flip / scale that move boxes with the pixels
  pipeline     all of the above composed from an AugmentConfig; `test_form`, the
               deterministic form of the v1 steps for test patches
"""

from cpc_tf.augment.boxes import flip_with_boxes, scale_with_boxes
from cpc_tf.augment.color import (
    color_drop, grayscale, histogram, inception_color, keep_channel)
from cpc_tf.augment.crops import center_crop, inception_crop
from cpc_tf.augment.elastic import elastic_shear
from cpc_tf.augment.v1 import centre_jitter, flip, jitter
from cpc_tf.augment.ops import OPS
from cpc_tf.augment.pipeline import augment_image, augment_patches, test_form
from cpc_tf.augment.randaugment import rand_augment

__all__ = [
    "OPS", "augment_image", "augment_patches", "center_crop", "centre_jitter", "color_drop",
    "elastic_shear", "flip", "flip_with_boxes", "grayscale", "histogram",
    "inception_color", "inception_crop", "jitter", "keep_channel", "rand_augment",
    "scale_with_boxes", "test_form",
]
