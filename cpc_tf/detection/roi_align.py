"""RoIAlign (He et al. 2017) by bilinear sampling, then 2x2 pooling (14x14 -> 7x7).

Glossary: B images, Hf/Wf feature grid, D depth, R regions per image,
S output side (14 in the C4 design), s feature stride in pixels.

Every output cell (i, j) reads the feature map bilinearly at the centre of its
bin: feature-grid coordinate y = (ymin + (i + 0.5) (ymax - ymin) / S) / s - 0.5
(feature cell k is centred on pixel s (k + 0.5)), and the same for x. One
sample per bin; the 2x2 pooling after it plays the role of RoIAlign's 2x2
sampling grid. Samples within one cell of the border read the border value
(the map is edge-padded by one cell); samples further out read 0.
"""

from __future__ import annotations

import tensorflow as tf


def roi_align(features, boxes, stride: int, size: int = 14) -> tf.Tensor:
  """features [B, Hf, Wf, D], boxes [B, R, 4] px (ymin, xmin, ymax, xmax) -> [B, R, S, S, D]."""
  features = tf.convert_to_tensor(features)
  boxes = tf.convert_to_tensor(boxes, tf.float32)
  if features.shape.rank != 4 or boxes.shape.rank != 3 or boxes.shape[-1] != 4:
    raise ValueError(f"roi_align wants features [B, Hf, Wf, D] and boxes [B, R, 4]; got "
                     f"{features.shape} and {boxes.shape}.")
  if size < 2:
    raise ValueError(f"roi_align size={size}: need at least 2 samples per side.")
  shape = tf.shape(features)
  num_boxes = tf.shape(boxes)[1]
  # Edge padding by one cell (a 1-wide SYMMETRIC pad repeats the border), so
  # bins of boxes touching the image border are not blended with zeros.
  padded = tf.pad(features, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
  extent = tf.cast(shape[1:3] + 1, tf.float32)  # padded size - 1: crop_and_resize's unit
  ymin, xmin, ymax, xmax = tf.unstack(boxes / float(stride), axis=-1)
  step_y, step_x = (ymax - ymin) / size, (xmax - xmin) / size
  # First and last sample positions in the padded grid (+1 for the pad, -0.5 for centres).
  y0 = ymin + 0.5 * step_y + 0.5
  x0 = xmin + 0.5 * step_x + 0.5
  y1 = y0 + (size - 1) * step_y
  x1 = x0 + (size - 1) * step_x
  normalized = tf.stack([y0 / extent[0], x0 / extent[1], y1 / extent[0], x1 / extent[1]], -1)
  box_indices = tf.repeat(tf.range(shape[0]), num_boxes)
  crops = tf.image.crop_and_resize(
      padded, tf.reshape(normalized, [-1, 4]), box_indices, [size, size],
      method="bilinear", extrapolation_value=0.0)
  crops = tf.cast(crops, features.dtype)
  return tf.reshape(crops, tf.concat([[shape[0], num_boxes, size, size], shape[3:]], 0))


def pool_half(crops, mode: str = "max") -> tf.Tensor:
  """[N, S, S, D] -> [N, S/2, S/2, D] by 2x2 max or average pooling (stride 2)."""
  if mode == "max":
    return tf.nn.max_pool2d(crops, 2, 2, "VALID")
  if mode == "avg":
    return tf.nn.avg_pool2d(crops, 2, 2, "VALID")
  raise ValueError(f"Unknown pooling {mode!r}; choose 'max' or 'avg'.")
