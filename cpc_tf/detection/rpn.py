"""Region proposal network (Ren et al. 2015 3.1): head, targets, losses, proposals.

Glossary: B images, H/W image size (px), Hf/Wf feature grid, D feature depth,
A anchors per cell, N = Hf * Wf * A anchors, M ground-truth boxes (padded),
K proposals kept per image. Boxes are (ymin, xmin, ymax, xmax) in pixels.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cpc_tf.detection import boxes as box_ops
from cpc_tf.detection import nms as nms_ops
from cpc_tf.detection import sampling
from cpc_tf.configs import DetectorConfig


class RPNHead(keras.layers.Layer):
  """3x3 conv + ReLU, then per-anchor objectness logits and box deltas (Ren et al. 3.1).

  One sigmoid logit per anchor instead of Ren et al.'s 2-way softmax: the same
  model (a 2-way softmax is a sigmoid of the logit difference) with half the outputs.
  """

  def __init__(self, channels: int, anchors_per_cell: int, **kwargs):
    super().__init__(**kwargs)
    self.anchors_per_cell = anchors_per_cell
    # Ren et al. 3.1.3: new layers start from N(0, 0.01).
    init = keras.initializers.RandomNormal(stddev=0.01)
    self.conv = keras.layers.Conv2D(channels, 3, padding="same", activation="relu",
                                    kernel_initializer=init, name="conv")
    self.objectness = keras.layers.Conv2D(anchors_per_cell, 1, kernel_initializer=init,
                                          name="objectness")
    self.deltas = keras.layers.Conv2D(4 * anchors_per_cell, 1, kernel_initializer=init,
                                      name="deltas")

  def build(self, input_shape):
    self.conv.build(input_shape)
    inner = tuple(input_shape[:-1]) + (self.conv.filters,)
    self.objectness.build(inner)
    self.deltas.build(inner)
    super().build(input_shape)

  def call(self, features):
    """features [B, Hf, Wf, D] -> (logits [B, N], deltas [B, N, 4]), anchor order of `anchors`."""
    h = self.conv(features)
    batch = tf.shape(features)[0]
    logits = tf.reshape(self.objectness(h), [batch, -1])
    deltas = tf.reshape(self.deltas(h), [batch, -1, 4])
    return logits, deltas


def assign_targets(anchors, gt_boxes, gt_valid, config: DetectorConfig, image_hw):
  """Anchor labels (1 object, 0 background, -1 ignored) and matched boxes.

  anchors [N, 4], gt_boxes [B, M, 4], gt_valid [B, M], image_hw (H, W) ->
  (labels [B, N] int32, matched [B, N, 4]). Ren et al. 3.1.2: positive if IoU >= 0.7
  with some box or if it has the highest IoU of a box; negative if IoU < 0.3 with
  every box; optionally (3.3) anchors crossing the image border are ignored.
  """
  overlaps, best, index = sampling.match(anchors, gt_boxes, gt_valid)  # [B, N, M], [B, N]
  # For each box, the anchors tied at its highest IoU (> 0) are positive too.
  per_gt_best = tf.reduce_max(overlaps, axis=1, keepdims=True)  # [B, 1, M]
  is_best = tf.reduce_any((overlaps == per_gt_best) & (per_gt_best > 0), axis=-1)
  positive = (best >= config.rpn_positive_iou) | is_best
  negative = (best < config.rpn_negative_iou) & ~positive
  labels = tf.where(positive, 1, tf.where(negative, 0, -1))
  if config.rpn_ignore_cross_boundary:
    h = tf.cast(image_hw[0], tf.float32)
    w = tf.cast(image_hw[1], tf.float32)
    inside = ((anchors[:, 0] >= 0) & (anchors[:, 1] >= 0) &
              (anchors[:, 2] <= h) & (anchors[:, 3] <= w))
    labels = tf.where(inside[None], labels, -1)
  matched = tf.gather(gt_boxes, index, batch_dims=1)
  return labels, matched


def losses(logits, deltas, anchors, gt_boxes, gt_valid, config: DetectorConfig, image_hw):
  """RPN losses (Ren et al. eq. 1) on 256 sampled anchors per image, 50% positive.

  logits [B, N], deltas [B, N, 4], anchors [N, 4], gt_boxes [B, M, 4], gt_valid [B, M]
  -> {"rpn_objectness", "rpn_box"} scalars. Both are normalised by the number of
  sampled anchors, which with Ren et al.'s lambda = 10 and N_reg ~ 2400 weighs the
  two terms about equally, as they report.
  """
  labels, matched = assign_targets(anchors, gt_boxes, gt_valid, config, image_hw)
  take_pos, take_neg = sampling.sample_balanced(
      labels == 1, labels == 0, config.rpn_batch_per_image, config.rpn_positive_fraction)
  sampled = tf.cast(take_pos | take_neg, tf.float32)
  count = tf.maximum(tf.reduce_sum(sampled), 1.0)
  bce = tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(take_pos, tf.float32), logits=logits)
  objectness = tf.reduce_sum(bce * sampled) / count
  # Anchors have positive sides; matched boxes of negatives may be padding, so
  # their (unused) targets are computed on a safe stand-in.
  safe = tf.where(take_pos[..., None], matched, anchors[None])
  targets = box_ops.encode(safe, anchors[None], config.rpn_box_weights)
  per_anchor = tf.reduce_sum(
      sampling.smooth_l1(deltas - tf.stop_gradient(targets), config.rpn_smooth_l1_beta), -1)
  box = tf.reduce_sum(per_anchor * tf.cast(take_pos, tf.float32)) / count
  return {"rpn_objectness": objectness, "rpn_box": box}


def proposals(logits, deltas, anchors, image_hw, pre_nms_top_k: int, post_nms_top_k: int,
              nms_iou: float, min_size: float = 0.0, weights=(1.0, 1.0, 1.0, 1.0)):
  """Ren et al. 3.3: decode, clip, top-k by objectness, NMS; no gradient flows back.

  logits [B, N], deltas [B, N, 4], anchors [N, 4] -> (boxes [B, K, 4], scores [B, K]
  probabilities, valid [B, K] bool), K = post_nms_top_k, best first.
  """
  logits = tf.stop_gradient(logits)
  deltas = tf.stop_gradient(deltas)
  n = logits.shape[1]
  k = min(pre_nms_top_k, n) if n is not None else tf.minimum(pre_nms_top_k, tf.shape(logits)[1])
  scores, index = tf.math.top_k(logits, k=k)
  boxes = box_ops.decode(tf.gather(deltas, index, batch_dims=1),
                         tf.gather(anchors, index), weights)
  boxes = box_ops.clip(boxes, image_hw[0], image_hw[1])
  heights = boxes[..., 2] - boxes[..., 0]
  widths = boxes[..., 3] - boxes[..., 1]
  # Degenerate boxes (a clip can flatten them) never become proposals.
  big = (heights > max(min_size, 0.0)) & (widths > max(min_size, 0.0))
  scores = tf.where(big, scores, -1e9)
  keep, valid = nms_ops.batched_nms(boxes, scores, post_nms_top_k, nms_iou,
                                    score_threshold=-1e8)
  kept_boxes = tf.gather(boxes, keep, batch_dims=1)
  kept_scores = tf.sigmoid(tf.gather(scores, keep, batch_dims=1))
  valid_f = tf.cast(valid, tf.float32)
  return kept_boxes * valid_f[..., None], kept_scores * valid_f, valid
