"""Faster R-CNN, ResNet "C4" design (Ren et al. 2015; ICLR 4.3), on any stride-16 backbone.

Glossary: B images, S image side (images are [B, S, S, 3] or [B, H, W, 3], float32
in [0, 1], padded at the bottom / right), M ground-truth boxes per image (padded),
K object classes, Q detections kept per image (padded). Boxes given to and
returned by the model are (ymin, xmin, ymax, xmax) as fractions of the padded
image's height / width, the convention of `cpc_tf.data.detection_dataset`;
internally they are pixels.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from cpc_tf.detection import anchors as anchor_lib
from cpc_tf.detection import boxes as box_ops
from cpc_tf.detection import nms as nms_ops
from cpc_tf.detection import roi_align as roi_align_lib
from cpc_tf.detection import roi_head
from cpc_tf.detection import rpn
from cpc_tf.configs import DetectorConfig

_PROBE_SIDE = 64  # px; small enough for a ResNet-161, a multiple of 16


class FasterRCNN(keras.Model):
  """Backbone -> RPN -> RoIAlign 14x14 -> box head; `loss_terms` to train, `detect` after.

  backbone: a keras.Model mapping images [B, H, W, 3] to a [B, H/16, W/16, D] grid,
  or to a dict holding it under `feature` (e.g. the CPC encoder's last stack,
  "stack3"). Its stride is checked once, on a 64 px probe image.
  """

  def __init__(self, backbone: keras.Model, num_classes: int, config: DetectorConfig,
               feature: str | None = None, **kwargs):
    super().__init__(**kwargs)
    if num_classes < 1:
      raise ValueError(f"num_classes={num_classes}: a detector needs at least one class.")
    self.backbone = backbone
    self.num_classes = num_classes
    self.config = config
    self.feature = feature
    depth = self._check_backbone()
    self.rpn_head = rpn.RPNHead(config.rpn_channels, config.anchors_per_cell, name="rpn")
    self.rpn_head.build((None, None, None, depth))
    self.box_head = roi_head.BoxHead(config, num_classes, name="box_head")
    size = config.roi_align_size
    self.box_head(tf.zeros([1, size, size, depth]))

  def _check_backbone(self) -> int:
    probe = self.features(tf.zeros([1, _PROBE_SIDE, _PROBE_SIDE, 3]))
    expected = -(-_PROBE_SIDE // self.config.feature_stride)
    got = tuple(int(n) for n in probe.shape[1:3])
    if got != (expected, expected):
      raise ValueError(
          f"The backbone output {self.feature or ''!s} maps a {_PROBE_SIDE} px image to a "
          f"{got[0]}x{got[1]} grid, not {expected}x{expected}: its stride is not "
          f"{self.config.feature_stride}. Pass the stride-{self.config.feature_stride} output "
          f"(for the CPC encoders the last stack) or set DetectorConfig.feature_stride.")
    return int(probe.shape[-1])

  def features(self, images, training: bool = False) -> tf.Tensor:
    """images [B, H, W, 3] -> [B, Hf, Wf, D]."""
    out = self.backbone(images, training=training)
    if isinstance(out, dict):
      if self.feature is None or self.feature not in out:
        raise ValueError(f"The backbone returns {sorted(out)}; pass feature= one of them "
                         f"(the stride-{self.config.feature_stride} grid).")
      out = out[self.feature]
    return out

  def _anchors(self, feature_map):
    shape = tf.shape(feature_map)
    c = self.config
    return anchor_lib.grid_anchors(shape[1], shape[2], c.feature_stride,
                                   c.anchor_scales, c.anchor_ratios)

  def _crops(self, feature_map, rois):
    """feature_map [B, Hf, Wf, D], rois [B, R, 4] px -> [B * R, S, S, D]."""
    size = self.config.roi_align_size
    crops = roi_align_lib.roi_align(feature_map, rois, self.config.feature_stride, size)
    return tf.reshape(crops, [-1, size, size, feature_map.shape[-1]])

  def loss_terms(self, images, boxes, classes, valid_mask, training: bool = True,
                 backbone_training: bool | None = None) -> dict:
    """Training losses for one batch (not named `losses`: that is keras.Model's property
    of regularisation losses, which a generic loop may sum).

    images [B, H, W, 3], boxes [B, M, 4] fractions, classes [B, M] int (0-based),
    valid_mask [B, M] bool -> {"rpn_objectness", "rpn_box", "roi_class", "roi_box"}.
    backbone_training (None: `training`) is the backbone's mode alone: False
    normalises a batch-norm backbone with its moving statistics and leaves them
    unchanged (a frozen backbone, or fixed statistics when fine-tuning).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    boxes = tf.convert_to_tensor(boxes, tf.float32)
    if images.shape.rank != 4 or boxes.shape.rank != 3 or boxes.shape[-1] != 4:
      raise ValueError(f"loss_terms wants images [B, H, W, 3] and boxes [B, M, 4]; got "
                       f"{images.shape} and {boxes.shape}.")
    c = self.config
    hw = tf.shape(images)[1:3]
    scale = tf.cast(tf.concat([hw, hw], 0), tf.float32)
    gt = boxes * scale
    valid_mask = tf.cast(valid_mask, tf.bool)
    classes = tf.where(valid_mask, tf.cast(classes, tf.int32), 0)
    # One always-invalid box, so a batch padded to M = 0 (no image with a box
    # left after augmentation) still has something to gather from.
    batch = tf.shape(gt)[0]
    gt = tf.concat([gt, tf.zeros([batch, 1, 4])], axis=1)
    valid_mask = tf.concat([valid_mask, tf.zeros([batch, 1], tf.bool)], axis=1)
    classes = tf.concat([classes, tf.zeros([batch, 1], tf.int32)], axis=1)
    fmap = self.features(images, training=training if backbone_training is None
                         else backbone_training)
    anchors = self._anchors(fmap)
    logits, deltas = self.rpn_head(fmap)
    out = rpn.losses(logits, deltas, anchors, gt, valid_mask, c, hw)
    props, _, props_valid = rpn.proposals(
        logits, deltas, anchors, hw, c.rpn_pre_nms_top_k_train, c.rpn_post_nms_top_k_train,
        c.rpn_nms_iou, c.rpn_min_size, c.rpn_box_weights)
    targets = roi_head.sample_rois(props, props_valid, gt, classes, valid_mask, c)
    cls_logits, box_deltas = self.box_head(self._crops(fmap, targets["rois"]), training=training)
    out.update(roi_head.losses(cls_logits, box_deltas, targets, c))
    return out

  def detect(self, images, image_sizes=None) -> dict:
    """images [B, H, W, 3] -> padded detections, best first.

    image_sizes [B, 2] (height, width) of the unpadded images in px (None: the full
    tensor) bound the clipping. Returns "boxes" [B, Q, 4] fractions, "scores" [B, Q],
    "classes" [B, Q] int32 (0-based), "valid" [B, Q] bool; per-class NMS and the
    score threshold of the config (Ren et al. 4).
    """
    images = tf.convert_to_tensor(images, tf.float32)
    c = self.config
    hw = tf.shape(images)[1:3]
    fmap = self.features(images, training=False)
    anchors = self._anchors(fmap)
    logits, deltas = self.rpn_head(fmap)
    props, _, props_valid = rpn.proposals(
        logits, deltas, anchors, hw, c.rpn_pre_nms_top_k_test, c.rpn_post_nms_top_k_test,
        c.rpn_nms_iou, c.rpn_min_size, c.rpn_box_weights)
    cls_logits, box_deltas = self.box_head(self._crops(fmap, props), training=False)
    batch, count = tf.shape(props)[0], tf.shape(props)[1]
    probs = tf.reshape(tf.nn.softmax(cls_logits)[:, 1:], [batch, count, self.num_classes])
    probs = probs * tf.cast(props_valid, tf.float32)[..., None]
    box_deltas = tf.reshape(box_deltas, [batch, count, self.num_classes, 4])
    decoded = box_ops.decode(box_deltas, props[:, :, None, :], c.roi_box_weights)
    if image_sizes is None:
      limit = tf.cast(tf.broadcast_to(hw[None], [batch, 2]), tf.float32)
    else:
      limit = tf.cast(image_sizes, tf.float32)
    decoded = box_ops.clip(decoded, limit[:, None, None, 0], limit[:, None, None, 1])
    scale = tf.cast(tf.concat([hw, hw], 0), tf.float32)
    kept_boxes, scores, classes, valid = nms_ops.per_class_nms(
        decoded / scale, probs, c.max_detections_per_class, c.max_detections,
        c.test_nms_iou, c.test_score_threshold)
    return {"boxes": kept_boxes, "scores": scores, "classes": classes, "valid": valid}

  def call(self, images):
    return self.detect(images)


def batch_losses(model: FasterRCNN, batch: dict, use_difficult: bool = False,
                 backbone_training: bool | None = None):
  """One pipeline batch -> (dict of scalar losses, total loss): the step a loop calls.

  `batch` is a `cpc_tf.data.detection_dataset` element (image, boxes, labels with
  -1 pads, difficult). py-faster-rcnn trains without "difficult" objects by
  default; use_difficult=True keeps them. Every loss is a mean over this batch's
  sampled anchors / RoIs, so a loop over several replicas divides the total by
  the number of replicas before summing gradients. backbone_training: as in
  `FasterRCNN.loss_terms`.
  """
  valid = batch["labels"] >= 0
  if not use_difficult:
    valid = valid & tf.logical_not(tf.cast(batch["difficult"], tf.bool))
  parts = model.loss_terms(batch["image"], batch["boxes"], batch["labels"], valid,
                           training=True, backbone_training=backbone_training)
  total = tf.add_n(list(parts.values()))
  return parts, total


def parameter_count(model: keras.Model) -> int:
  return int(sum(np.prod(v.shape) for v in model.weights))
