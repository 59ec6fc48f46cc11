"""Detection augmentations that move boxes exactly like pixels (ICLR 4.3).

Glossary: H/W image height / width, C = 3 channels, K boxes. Boxes are float32
[K, 4] as normalised (ymin, xmin, ymax, xmax), where y = 0 is the top edge of
the first pixel row and y = 1 the bottom edge of the last one.

The Faster R-CNN transfer uses colour dropping (`color.color_drop`, re-exported
here) and scale augmentation (`scale_with_boxes`); `flip_with_boxes` is the
usual horizontal flip of detection training.
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.augment import geometry
from cpc_tf.augment.color import color_drop
from cpc_tf.augment.common import (
    FILL_VALUE, check_images, check_seed, no_autograph, split_seed)

__all__ = ["flip_with_boxes", "scale_with_boxes", "color_drop"]


def _check_boxes(boxes) -> tf.Tensor:
  boxes = tf.convert_to_tensor(boxes, tf.float32)
  if boxes.shape.rank != 2 or boxes.shape[-1] not in (4, None):
    raise ValueError(f"Boxes must be [K, 4] (ymin, xmin, ymax, xmax), got shape {boxes.shape}.")
  return boxes


@no_autograph
def flip_with_boxes(image, boxes, seed, p: float = 0.5):
  """Mirrors image [H, W, 3] left-right with probability p; boxes [K, 4] follow."""
  image = check_images(image, "flip_with_boxes", ranks=(3,))
  boxes = _check_boxes(boxes)
  flip = tf.random.stateless_uniform([], check_seed(seed)) < p
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=1)
  flipped = tf.stack([ymin, 1.0 - xmax, ymax, 1.0 - xmin], axis=1)
  image = tf.where(flip, tf.reverse(image, [1]), image)
  return image, tf.where(flip, flipped, boxes)


@no_autograph
def scale_with_boxes(image, boxes, seed, scale_range=(0.8, 1.25)):
  """Scale jitter: zoom by s ~ U(scale_range) about a random point, keep H x W.

  image [H, W, 3], boxes [K, 4] -> same shapes. For s > 1 a random H x W window
  of the enlarged image is kept; for s < 1 the shrunk image sits at a random
  place on a mid-grey canvas. Boxes are mapped like the pixels and clipped to
  the image; a box pushed entirely outside comes back with zero area
  (ymin == ymax or xmin == xmax), for the caller to drop.
  """
  image = check_images(image, "scale_with_boxes", ranks=(3,))
  boxes = _check_boxes(boxes)
  lo, hi = scale_range
  if not 0.0 < lo <= hi:
    raise ValueError(f"scale_range={scale_range}: need 0 < low <= high.")
  s_scale, s_y, s_x = split_seed(seed, 3)
  scale = tf.random.stateless_uniform([], s_scale, lo, hi)
  shape = tf.shape(image)
  h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
  # Offset of the output window in the scaled image, in pixels: in [0, (s-1)H]
  # when zooming in, in [(s-1)H, 0] when zooming out.
  off_y = tf.random.stateless_uniform([], s_y) * (scale - 1.0) * h
  off_x = tf.random.stateless_uniform([], s_x) * (scale - 1.0) * w
  # Edge coordinates map as u_out = s * u_in - off; pixel centres sit at index + 0.5.
  linear = tf.eye(2, batch_shape=[1]) / scale
  centre_y, centre_x = (h - 1.0) / 2.0, (w - 1.0) / 2.0
  shift_y = (centre_y + 0.5 + off_y) / scale - 0.5 - centre_y
  shift_x = (centre_x + 0.5 + off_x) / scale - 0.5 - centre_x
  transforms = geometry.affine_transforms(
      linear, tf.stack([shift_y, shift_x])[None], shape[0], shape[1])
  out = geometry.transform(image[None], transforms, fill_value=FILL_VALUE)[0]
  out = tf.clip_by_value(out, 0.0, 1.0)
  out.set_shape(image.shape)
  offset = tf.stack([off_y / h, off_x / w, off_y / h, off_x / w])
  moved = tf.clip_by_value(boxes * scale - offset, 0.0, 1.0)
  return out, moved
