"""Greedy non-maximum suppression with fixed-size (padded) outputs.

Glossary: B images, N candidate boxes, C classes, K kept boxes (padded).
Greedy NMS: visit boxes by decreasing score, keep a box unless its IoU with an
already kept box exceeds `iou_threshold`. Outputs are padded to K so every
shape is static inside a `tf.function`; a [B, K] mask says which rows are real.
"""

from __future__ import annotations

import tensorflow as tf


def batched_nms(boxes, scores, max_output: int, iou_threshold: float,
                score_threshold: float = float("-inf")):
  """Class-agnostic NMS per image.

  boxes [B, N, 4], scores [B, N] -> (indices [B, K] int32 into N, 0 where padded;
  valid [B, K] bool), K = max_output; kept rows in decreasing score order.
  """
  boxes = tf.convert_to_tensor(boxes, tf.float32)
  scores = tf.convert_to_tensor(scores, tf.float32)
  if boxes.shape.rank != 3 or scores.shape.rank != 2:
    raise ValueError(f"batched_nms wants boxes [B, N, 4] and scores [B, N]; got "
                     f"{boxes.shape} and {scores.shape}.")
  # non_max_suppression_padded wants (ymin, xmin, ymax, xmax) unless told the
  # corners may be swapped; ours are canonical, which takes its faster path.
  indices, num = tf.image.non_max_suppression_padded(
      boxes, scores, max_output, iou_threshold=iou_threshold,
      score_threshold=score_threshold, pad_to_max_output_size=True,
      canonicalized_coordinates=True)
  valid = tf.range(max_output)[None, :] < num[:, None]
  return tf.where(valid, indices, 0), valid


def per_class_nms(boxes, scores, max_per_class: int, max_total: int,
                  iou_threshold: float, score_threshold: float):
  """NMS run separately for every class, then the best `max_total` across classes.

  boxes [B, N, C, 4] (one box per class) and scores [B, N, C] ->
  (boxes [B, K, 4], scores [B, K], classes [B, K] int32, valid [B, K] bool), K = max_total,
  sorted by decreasing score; padded rows have zeros and class 0.
  """
  boxes = tf.convert_to_tensor(boxes, tf.float32)
  scores = tf.convert_to_tensor(scores, tf.float32)
  if boxes.shape.rank != 4 or scores.shape.rank != 3:
    raise ValueError(f"per_class_nms wants boxes [B, N, C, 4] and scores [B, N, C]; got "
                     f"{boxes.shape} and {scores.shape}.")
  out_boxes, out_scores, out_classes, num = tf.image.combined_non_max_suppression(
      boxes, scores, max_output_size_per_class=max_per_class, max_total_size=max_total,
      iou_threshold=iou_threshold, score_threshold=score_threshold,
      pad_per_class=False, clip_boxes=False)
  valid = tf.range(max_total)[None, :] < num[:, None]
  return out_boxes, out_scores, tf.cast(out_classes, tf.int32), valid
