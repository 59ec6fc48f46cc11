"""PASCAL VOC 2007 mean average precision, as the VOC2007 devkit computes it.

Glossary: K classes, M ground-truth boxes of an image, Q detections of an image.
Per class, detections of all images are ranked by score (ties keep the order in
which they were added: a stable sort, where the devkit's quicksort is arbitrary);
each is matched to the ground-truth box of its class in its image with the
highest IoU; IoU > threshold (strict, as the devkit) with a box not yet matched
is a true positive, with an already matched box a false positive (duplicate),
below the threshold a false positive; a best match that is "difficult" makes the
detection neither. Difficult boxes are not counted as positives. AP is the
11-point interpolated precision (VOC2007, default) or the area under the
interpolated curve (VOC2010+). A class without any non-difficult ground truth
has AP NaN and is left out of the mean. Boxes are continuous (no devkit "+1"
pixel), in any unit shared by detections and ground truth.
"""

from __future__ import annotations

import numpy as np


def average_precision(recall, precision, use_07_metric: bool = True) -> float:
  """AP of a ranked list: recall [Q] and precision [Q] after each detection."""
  recall = np.asarray(recall, np.float64)
  precision = np.asarray(precision, np.float64)
  if use_07_metric:
    ap = 0.0
    for t in np.arange(0.0, 1.1, 0.1):  # the devkit's 11 thresholds 0, 0.1, ..., 1
      above = precision[recall >= t]
      ap += (above.max() if above.size else 0.0) / 11.0
    return float(ap)
  mrec = np.concatenate([[0.0], recall, [1.0]])
  mpre = np.concatenate([[0.0], precision, [0.0]])
  mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # precision envelope
  step = np.nonzero(mrec[1:] != mrec[:-1])[0]
  return float(np.sum((mrec[step + 1] - mrec[step]) * mpre[step + 1]))


def _iou(box, boxes):
  top = np.maximum(box[0], boxes[:, 0])
  left = np.maximum(box[1], boxes[:, 1])
  bottom = np.minimum(box[2], boxes[:, 2])
  right = np.minimum(box[3], boxes[:, 3])
  inter = np.maximum(bottom - top, 0.0) * np.maximum(right - left, 0.0)
  areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  union = (box[2] - box[0]) * (box[3] - box[1]) + areas - inter
  return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class VOCEvaluator:
  """Accumulates images, then `result()` -> {"ap": [K] float64, "map": float}."""

  def __init__(self, num_classes: int, iou_threshold: float = 0.5, use_07_metric: bool = True):
    if num_classes < 1:
      raise ValueError(f"num_classes={num_classes}: need at least one class.")
    self.num_classes = num_classes
    self.iou_threshold = iou_threshold
    self.use_07_metric = use_07_metric
    self._images = []  # (gt boxes, gt classes, difficult)
    self._detections = []  # (image index, score, class, box)

  def add_image(self, gt_boxes, gt_classes, gt_difficult, det_boxes, det_scores, det_classes):
    """One image: gt_boxes [M, 4], gt_classes [M], gt_difficult [M]; det_* [Q, 4], [Q], [Q]."""
    gt_boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)
    gt_classes = np.asarray(gt_classes, np.int64).reshape(-1)
    gt_difficult = np.asarray(gt_difficult, bool).reshape(-1)
    det_boxes = np.asarray(det_boxes, np.float64).reshape(-1, 4)
    det_scores = np.asarray(det_scores, np.float64).reshape(-1)
    det_classes = np.asarray(det_classes, np.int64).reshape(-1)
    if not len(gt_boxes) == len(gt_classes) == len(gt_difficult):
      raise ValueError(f"Ground truth of one image: {len(gt_boxes)} boxes, {len(gt_classes)} "
                       f"classes, {len(gt_difficult)} difficult flags; they must match.")
    if not len(det_boxes) == len(det_scores) == len(det_classes):
      raise ValueError(f"Detections of one image: {len(det_boxes)} boxes, {len(det_scores)} "
                       f"scores, {len(det_classes)} classes; they must match.")
    for name, c in (("ground-truth", gt_classes), ("detection", det_classes)):
      if c.size and (c.min() < 0 or c.max() >= self.num_classes):
        raise ValueError(f"A {name} class is outside [0, {self.num_classes}): {sorted(set(c))}.")
    image = len(self._images)
    self._images.append((gt_boxes, gt_classes, gt_difficult))
    for box, score, cls in zip(det_boxes, det_scores, det_classes):
      self._detections.append((image, float(score), int(cls), box))

  def add_batch(self, gt_boxes, gt_labels, gt_difficult, detections: dict):
    """Padded batches: gt [B, M, ...] with labels -1 as padding; detections as returned
    by `FasterRCNN.detect` ("boxes", "scores", "classes", "valid" [B, Q, ...])."""
    gt_labels = np.asarray(gt_labels)
    gt_boxes, gt_difficult = np.asarray(gt_boxes), np.asarray(gt_difficult)
    det = {k: np.asarray(v) for k, v in detections.items()}
    for b in range(gt_labels.shape[0]):
      real = gt_labels[b] >= 0
      keep = det["valid"][b].astype(bool)
      self.add_image(gt_boxes[b][real], gt_labels[b][real], gt_difficult[b][real],
                     det["boxes"][b][keep], det["scores"][b][keep], det["classes"][b][keep])

  def result(self) -> dict:
    ap = np.full(self.num_classes, np.nan)
    for k in range(self.num_classes):
      ap[k] = self._class_ap(k)
    real = ~np.isnan(ap)
    return {"ap": ap, "map": float(ap[real].mean()) if real.any() else float("nan")}

  def _class_ap(self, k: int) -> float:
    npos = sum(int(np.sum((c == k) & ~d)) for _, c, d in self._images)
    if npos == 0:
      return float("nan")
    dets = [d for d in self._detections if d[2] == k]
    order = sorted(range(len(dets)), key=lambda i: -dets[i][1])  # stable for ties
    used = [np.zeros(int(np.sum(c == k)), bool) for _, c, _ in self._images]
    tp, fp = [], []
    for i in order:
      image, _, _, box = dets[i]
      boxes, classes, difficult = self._images[image]
      mine = classes == k
      gt = boxes[mine]
      hit, ignore = False, False  # a duplicate (matched box already used) is a miss
      if len(gt):
        overlaps = _iou(box, gt)
        j = int(np.argmax(overlaps))
        if overlaps[j] > self.iou_threshold:
          if difficult[mine][j]:
            ignore = True
          elif not used[image][j]:
            used[image][j] = True
            hit = True
      if ignore:
        continue
      tp.append(1.0 if hit else 0.0)
      fp.append(0.0 if hit else 1.0)
    tp_cum, fp_cum = np.cumsum(tp), np.cumsum(fp)
    recall = tp_cum / npos
    precision = tp_cum / np.maximum(tp_cum + fp_cum, np.finfo(np.float64).eps)
    return average_precision(recall, precision, self.use_07_metric)
