"""Box arithmetic: IoU, the Fast R-CNN delta encoding, clipping.

Glossary: N, M numbers of boxes; "..." any leading batch dimensions.
A box is (ymin, xmin, ymax, xmax) in continuous coordinates (pixels or fractions;
every function is unit-agnostic). Width is xmax - xmin, with no "+1" of the
integer-pixel convention of the VOC devkit, since boxes here are continuous.
"""

from __future__ import annotations

import math

import tensorflow as tf

# Deltas larger than this are clamped before exp() so that a wild early
# prediction cannot overflow to inf (log(1000 / 16) as in Detectron).
_MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def _check(boxes, name="boxes") -> tf.Tensor:
  boxes = tf.convert_to_tensor(boxes, tf.float32)
  if boxes.shape.rank is not None and boxes.shape[-1] not in (None, 4):
    raise ValueError(f"{name} must end in 4 coordinates (ymin, xmin, ymax, xmax); "
                     f"got shape {boxes.shape}.")
  return boxes


def area(boxes) -> tf.Tensor:
  """[..., 4] -> [...]; degenerate boxes have area 0."""
  boxes = _check(boxes)
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def iou(a, b) -> tf.Tensor:
  """Pairwise IoU: a [..., N, 4], b [..., M, 4] -> [..., N, M]; 0 when the union is 0."""
  a, b = _check(a, "a"), _check(b, "b")
  a_ = a[..., :, None, :]
  b_ = b[..., None, :, :]
  top = tf.maximum(a_[..., 0], b_[..., 0])
  left = tf.maximum(a_[..., 1], b_[..., 1])
  bottom = tf.minimum(a_[..., 2], b_[..., 2])
  right = tf.minimum(a_[..., 3], b_[..., 3])
  inter = tf.maximum(bottom - top, 0.0) * tf.maximum(right - left, 0.0)
  union = area(a)[..., :, None] + area(b)[..., None, :] - inter
  return tf.math.divide_no_nan(inter, union)


def _center_size(boxes):
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  h, w = ymax - ymin, xmax - xmin
  return ymin + 0.5 * h, xmin + 0.5 * w, h, w


def encode(boxes, anchors, weights=(10.0, 10.0, 5.0, 5.0)) -> tf.Tensor:
  """Targets of `boxes` relative to `anchors` (Girshick et al. 2014 C): [..., 4] each.

  (dy, dx, dh, dw) = (wy (y - ya) / ha, wx (x - xa) / wa, wh log(h / ha), ww log(w / wa)).
  The default weights (10, 10, 5, 5) are the Fast R-CNN head's; the RPN uses 1s.
  Anchors must have positive sides; boxes with a zero side give -inf log terms.
  """
  boxes, anchors = _check(boxes), _check(anchors, "anchors")
  y, x, h, w = _center_size(boxes)
  ya, xa, ha, wa = _center_size(anchors)
  wy, wx, wh, ww = weights
  return tf.stack([wy * (y - ya) / ha, wx * (x - xa) / wa,
                   wh * tf.math.log(h / ha), ww * tf.math.log(w / wa)], axis=-1)


def decode(deltas, anchors, weights=(10.0, 10.0, 5.0, 5.0)) -> tf.Tensor:
  """Inverse of `encode`: deltas [..., 4] applied to anchors [..., 4] -> boxes [..., 4]."""
  deltas, anchors = _check(deltas, "deltas"), _check(anchors, "anchors")
  ya, xa, ha, wa = _center_size(anchors)
  wy, wx, wh, ww = weights
  dy, dx, dh, dw = tf.unstack(deltas, axis=-1)
  y, x = dy / wy * ha + ya, dx / wx * wa + xa
  h = tf.exp(tf.minimum(dh / wh, _MAX_LOG_SCALE)) * ha
  w = tf.exp(tf.minimum(dw / ww, _MAX_LOG_SCALE)) * wa
  return tf.stack([y - 0.5 * h, x - 0.5 * w, y + 0.5 * h, x + 0.5 * w], axis=-1)


def clip(boxes, height, width) -> tf.Tensor:
  """Clips boxes [..., 4] to [0, height] x [0, width] (scalars or broadcastable [...])."""
  boxes = _check(boxes)
  height = tf.cast(height, tf.float32)
  width = tf.cast(width, tf.float32)
  ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
  return tf.stack([tf.clip_by_value(ymin, 0.0, height), tf.clip_by_value(xmin, 0.0, width),
                   tf.clip_by_value(ymax, 0.0, height), tf.clip_by_value(xmax, 0.0, width)],
                  axis=-1)
