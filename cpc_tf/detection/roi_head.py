"""Second stage: RoI sampling, the box head (res5-like stack or two FC layers), losses.

Glossary: B images, P proposals per image, M ground-truth boxes (padded),
R sampled RoIs per image, N = B * R regions, S RoIAlign side (14), D feature
depth, K object classes (class 0 of the head is background, k + 1 is object k).
Boxes are (ymin, xmin, ymax, xmax) in pixels.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cpc_tf.detection import boxes as box_ops
from cpc_tf.detection import roi_align as roi_align_lib
from cpc_tf.detection import sampling
from cpc_tf.configs import DetectorConfig


def sample_rois(proposals, proposal_valid, gt_boxes, gt_classes, gt_valid,
                config: DetectorConfig):
  """Picks R = min(roi_batch_per_image, P (+ M)) RoIs per image, 25% foreground.

  proposals [B, P, 4], proposal_valid [B, P], gt_boxes [B, M, 4], gt_classes [B, M]
  (0-based), gt_valid [B, M] -> dict of "rois" [B, R, 4], "valid" [B, R] bool,
  "classes" [B, R] int32 (0 background, k + 1 object k), "deltas" [B, R, 4] targets
  (zeros for background). Foreground: IoU >= 0.5 with a box; background: IoU in
  [roi_background_iou_low, 0.5) (Girshick 2015 2.3).
  """
  gt_boxes = tf.convert_to_tensor(gt_boxes, tf.float32)
  gt_valid = tf.cast(gt_valid, tf.bool)
  candidates = tf.stop_gradient(tf.convert_to_tensor(proposals, tf.float32))
  valid = tf.cast(proposal_valid, tf.bool)
  if config.roi_add_ground_truth:
    candidates = tf.concat([candidates, gt_boxes], axis=1)
    valid = tf.concat([valid, gt_valid], axis=1)
  _, best, index = sampling.match(candidates, gt_boxes, gt_valid)
  foreground = valid & (best >= config.roi_foreground_iou)
  # An image without boxes has best = -1: all its real candidates are background.
  background = (valid & (best < config.roi_foreground_iou) &
                (tf.maximum(best, 0.0) >= config.roi_background_iou_low))
  take_fg, take_bg = sampling.sample_balanced(
      foreground, background, config.roi_batch_per_image, config.roi_positive_fraction)
  count = candidates.shape[1]
  r = min(config.roi_batch_per_image, count) if count is not None else config.roi_batch_per_image
  # Fixed R rows per image: sampled foreground first, then background, then unused rows.
  key = (2.0 * tf.cast(take_fg, tf.float32) + tf.cast(take_bg, tf.float32)
         + 0.5 * tf.random.uniform(tf.shape(best)))
  top, order = tf.math.top_k(key, k=r)
  rois = tf.gather(candidates, order, batch_dims=1)
  row_valid = top >= 1.0
  row_fg = top >= 2.0
  gt_index = tf.gather(index, order, batch_dims=1)
  classes = tf.gather(tf.cast(gt_classes, tf.int32), gt_index, batch_dims=1) + 1
  classes = tf.where(row_fg, classes, 0)
  matched = tf.gather(gt_boxes, gt_index, batch_dims=1)
  safe_roi = tf.where(row_fg[..., None], rois, tf.constant([0.0, 0.0, 1.0, 1.0]))
  safe_gt = tf.where(row_fg[..., None], matched, tf.constant([0.0, 0.0, 1.0, 1.0]))
  deltas = box_ops.encode(safe_gt, safe_roi, config.roi_box_weights)
  deltas = tf.where(row_fg[..., None], deltas, 0.0)
  return {"rois": rois, "valid": row_valid, "classes": classes, "deltas": deltas}


class BoxHead(keras.layers.Layer):
  """RoI crops [N, S, S, D] -> (class logits [N, K + 1], per-class deltas [N, K, 4]).

  "residual": pre-activation bottleneck blocks, the first with stride 2 (14 -> 7,
  i.e. stride 32 like res5 of the ResNet C4 detector, He et al. 2016 A), final
  norm + ReLU, spatial mean. Layer norm over channels as in the CPC encoder
  (ICLR 4.1), since batch statistics over RoIs of few images are poor.
  "fc": 2x2 pool (14 -> 7), then two ReLU fully connected layers (Ren et al.).
  """

  def __init__(self, config: DetectorConfig, num_classes: int, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.num_classes = num_classes
    c = config
    # One attribute per layer: tf.train.Checkpoint does not see layers held in a
    # Python list of a Keras 3 layer, so a list would silently go unsaved.
    if c.head == "residual":
      trunk = [_Bottleneck(c.head_width, c.head_bottleneck, 2 if j == 0 else 1,
                           project=j == 0, name=f"res5_block{j + 1}")
               for j in range(c.head_blocks)]
      self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="res5_final_ln")
    else:
      self.flatten = keras.layers.Flatten(name="flatten")
      trunk = [keras.layers.Dense(c.fc_width, activation="relu", name="fc1"),
               keras.layers.Dense(c.fc_width, activation="relu", name="fc2")]
    self.trunk_size = len(trunk)
    for j, layer in enumerate(trunk):
      setattr(self, f"trunk{j}", layer)
    # Fast R-CNN 2.3 initialisation: N(0, 0.01) for scores, N(0, 0.001) for boxes.
    self.classifier = keras.layers.Dense(
        num_classes + 1, kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        name="classifier")
    self.regressor = keras.layers.Dense(
        4 * num_classes, kernel_initializer=keras.initializers.RandomNormal(stddev=0.001),
        name="regressor")

  def call(self, crops, training=False):
    if self.config.head == "residual":
      h = crops
      for block in self.trunk():
        h = block(h)
      h = tf.nn.relu(self.final_norm(h))
      h = tf.reduce_mean(h, axis=[1, 2])
    else:
      h = self.flatten(roi_align_lib.pool_half(crops, self.config.roi_pool))
      for layer in self.trunk():
        h = layer(h)
    logits = self.classifier(h)
    deltas = tf.reshape(self.regressor(h), [-1, self.num_classes, 4])
    return logits, deltas

  def trunk(self) -> list:
    """The residual blocks or fully connected layers, in order."""
    return [getattr(self, f"trunk{j}") for j in range(self.trunk_size)]


class _Bottleneck(keras.layers.Layer):
  """Pre-activation bottleneck block (He et al. 2016, v2) with layer norm."""

  def __init__(self, width: int, bottleneck: int, stride: int, project: bool, **kwargs):
    super().__init__(**kwargs)
    self.stride = stride
    # Attributes, not a list: see BoxHead (lists go unsaved by tf.train.Checkpoint).
    self.ln0, self.ln1, self.ln2 = (keras.layers.LayerNormalization(epsilon=1e-5, name=f"ln{i}")
                                    for i in range(3))
    self.conv1 = keras.layers.Conv2D(bottleneck, 1, use_bias=False, name="conv1")
    self.conv2 = keras.layers.Conv2D(bottleneck, 3, strides=stride, padding="same",
                                     use_bias=False, name="conv2")
    self.conv3 = keras.layers.Conv2D(width, 1, use_bias=False, name="conv3")
    self.proj = (keras.layers.Conv2D(width, 1, strides=stride, use_bias=False, name="proj")
                 if project else None)

  def call(self, x):
    pre = tf.nn.relu(self.ln0(x))
    shortcut = self.proj(pre) if self.proj is not None else x
    h = tf.nn.relu(self.ln1(self.conv1(pre)))
    h = tf.nn.relu(self.ln2(self.conv2(h)))
    return shortcut + self.conv3(h)


def losses(logits, deltas, targets, config: DetectorConfig):
  """Fast R-CNN multi-task loss (Girshick 2015 eq. 1) over the sampled RoIs.

  logits [N, K + 1], deltas [N, K, 4], targets = `sample_rois` output flattened to
  N = B * R rows -> {"roi_class", "roi_box"} scalars: cross-entropy averaged over
  valid RoIs; smooth L1 on the ground-truth class's deltas of foreground RoIs,
  divided by the same count.
  """
  valid = tf.cast(tf.reshape(targets["valid"], [-1]), tf.float32)
  classes = tf.reshape(targets["classes"], [-1])
  target_deltas = tf.reshape(targets["deltas"], [-1, 4])
  count = tf.maximum(tf.reduce_sum(valid), 1.0)
  ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=classes, logits=logits)
  class_loss = tf.reduce_sum(ce * valid) / count
  foreground = tf.cast(classes > 0, tf.float32) * valid
  chosen = tf.gather(deltas, tf.maximum(classes - 1, 0), batch_dims=1)  # [N, 4]
  per_roi = tf.reduce_sum(sampling.smooth_l1(chosen - target_deltas, config.roi_smooth_l1_beta), -1)
  box_loss = tf.reduce_sum(per_roi * foreground) / count
  return {"roi_class": class_loss, "roi_box": box_loss}
