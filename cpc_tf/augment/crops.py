"""Whole-image crops: Inception random-sized crop (training) and centre crop (evaluation).

Glossary: H/W input height / width, S the output side, C = 3 channels.
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.augment.common import check_images, check_seed, no_autograph

# Evaluation crop: the central 87.5% of the shorter side, i.e. the usual
# "resize to 256, centre-crop 224" of ImageNet evaluation, at any output size.
CENTER_CROP_FRACTION = 0.875


@no_autograph
def inception_crop(image, size: int, seed, area_range=(0.08, 1.0),
                   aspect_range=(3.0 / 4.0, 4.0 / 3.0), max_attempts: int = 10) -> tf.Tensor:
  """Szegedy et al. (2014) random-sized crop: [H, W, 3] -> [S, S, 3] (supp. C).

  A crop covering a fraction of the image area drawn from area_range, with an
  aspect ratio drawn from aspect_range, resized bilinearly to S x S. After
  max_attempts failed draws the whole image is used (tf-slim's behaviour).
  """
  image = check_images(image, "inception_crop", ranks=(3,))
  begin, crop_size, _ = tf.image.stateless_sample_distorted_bounding_box(
      tf.shape(image), bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
      seed=check_seed(seed), min_object_covered=0.0,
      aspect_ratio_range=aspect_range, area_range=area_range,
      max_attempts=max_attempts, use_image_if_no_bounding_boxes=True)
  crop = tf.slice(image, begin, crop_size)
  out = tf.image.resize(crop[None], [size, size], method="bilinear")[0]
  return tf.clip_by_value(out, 0.0, 1.0)


@no_autograph
def center_crop(image, size: int, crop_fraction: float = CENTER_CROP_FRACTION) -> tf.Tensor:
  """Central square of crop_fraction * min(H, W) pixels, resized to S x S.

  image [H, W, 3] or [B, H, W, 3] -> [S, S, 3] or [B, S, S, 3]; deterministic.
  """
  image = check_images(image, "center_crop", ranks=(3, 4))
  if not 0.0 < crop_fraction <= 1.0:
    raise ValueError(f"crop_fraction={crop_fraction} must lie in (0, 1].")
  single = image.shape.rank == 3
  batch = image[None] if single else image
  shape = tf.shape(batch)
  h, w = shape[1], shape[2]
  side = tf.cast(tf.cast(tf.minimum(h, w), tf.float32) * crop_fraction, tf.int32)
  side = tf.maximum(side, 1)
  top, left = (h - side) // 2, (w - side) // 2
  crop = batch[:, top:top + side, left:left + side, :]
  out = tf.clip_by_value(tf.image.resize(crop, [size, size], method="bilinear"), 0.0, 1.0)
  return out[0] if single else out
