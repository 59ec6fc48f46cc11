"""Training targets: match boxes to ground truth, then sample a balanced minibatch.

Glossary: B images, N candidate boxes (anchors or proposals), M ground-truth
boxes per image (padded; `gt_valid` [B, M] marks the real ones).
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.detection import boxes as box_ops


def match(candidates, gt_boxes, gt_valid):
  """IoU of every candidate with every real ground-truth box.

  candidates [B, N, 4] or [N, 4] (shared), gt_boxes [B, M, 4], gt_valid [B, M] ->
  (iou [B, N, M] with -1 for padded ground truth, best_iou [B, N] (-1 when the image
  has no ground truth), best_index [B, N] int32).
  """
  gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
  candidates = tf.convert_to_tensor(candidates, tf.float32)
  if candidates.shape.rank == 2:
    candidates = tf.broadcast_to(candidates[None], [tf.shape(gt_boxes)[0], tf.shape(candidates)[0], 4])
  overlaps = box_ops.iou(candidates, gt_boxes)
  overlaps = tf.where(tf.cast(gt_valid, tf.bool)[:, None, :], overlaps, -1.0)
  if gt_boxes.shape[1] == 0:  # static M = 0: a batch without any box
    shape = tf.shape(overlaps)[:2]
    return overlaps, -tf.ones(shape), tf.zeros(shape, tf.int32)
  best = tf.reduce_max(overlaps, axis=-1)
  index = tf.argmax(overlaps, axis=-1, output_type=tf.int32)
  return overlaps, best, index


def sample_balanced(positive, negative, num_samples: int, positive_fraction: float):
  """Uniformly samples <= num_samples of each image's candidates, <= fraction positive.

  positive, negative [B, N] bool (disjoint) -> (sampled positive, sampled negative)
  [B, N] bool. Up to round(num_samples * positive_fraction) positives are taken; the
  rest of the minibatch is filled with negatives (Ren et al. 3.1.3: "if there are
  fewer than 128 positive samples ... we pad the mini-batch with negative ones").
  """
  positive = tf.cast(positive, tf.bool)
  negative = tf.logical_and(tf.cast(negative, tf.bool), tf.logical_not(positive))
  max_pos = int(round(num_samples * positive_fraction))
  num_pos = tf.minimum(tf.reduce_sum(tf.cast(positive, tf.int32), -1), max_pos)  # [B]
  num_neg = num_samples - num_pos
  take_pos = _random_rank(positive) < num_pos[:, None]
  take_neg = _random_rank(negative) < num_neg[:, None]
  return tf.logical_and(positive, take_pos), tf.logical_and(negative, take_neg)


def _random_rank(mask) -> tf.Tensor:
  """[B, N] bool -> [B, N] int32: a uniformly random order of the True entries first."""
  key = tf.where(mask, tf.random.uniform(tf.shape(mask)), -1.0)
  order = tf.argsort(key, axis=-1, direction="DESCENDING")
  return tf.argsort(order, axis=-1)


def smooth_l1(difference, beta: float) -> tf.Tensor:
  """Elementwise smooth L1 (Girshick 2015 eq. 3; beta = 1 there): quadratic below beta."""
  x = tf.abs(difference)
  if beta <= 0:
    return x
  return tf.where(x < beta, 0.5 * x * x / beta, x - 0.5 * beta)
