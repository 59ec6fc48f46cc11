"""RPN: target assignment rules, losses against NumPy, proposals."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.detection import boxes as box_ops
from cpc_tf.detection import rpn
from cpc_tf.configs import DetectorConfig

CONFIG = DetectorConfig(rpn_ignore_cross_boundary=False)


def test_assign_targets_rules():
  anchors = np.array([[0, 0, 10, 10],     # IoU 1 with box 0 -> positive
                      [0, 0, 10, 8],      # IoU 0.8 -> positive
                      [0, 0, 10, 6],      # IoU 0.6 -> ignored
                      [0, 0, 10, 2],      # IoU 0.2 -> negative
                      [40, 40, 50, 60],   # best anchor of box 1 (IoU 0.5) -> positive
                      [90, 90, 99, 99]],  # no overlap -> negative
                     np.float32)
  gt = np.array([[[0, 0, 10, 10], [40, 40, 50, 50], [0, 0, 0, 0]]], np.float32)
  valid = np.array([[True, True, False]])
  labels, matched = rpn.assign_targets(anchors, gt, valid, CONFIG, (100, 100))
  assert list(labels.numpy()[0]) == [1, 1, -1, 0, 1, 0]
  np.testing.assert_array_equal(matched.numpy()[0, 4], [40, 40, 50, 50])
  cross = dataclasses.replace(CONFIG, rpn_ignore_cross_boundary=True)
  labels, _ = rpn.assign_targets(anchors, gt, valid, cross, (95, 95))
  assert labels.numpy()[0, 5] == -1  # crosses the 95 px border


def test_losses_match_numpy_when_everything_is_sampled():
  anchors = np.array([[0, 0, 10, 10], [0, 0, 10, 2], [50, 50, 70, 70]], np.float32)
  gt = np.array([[[1, 1, 11, 12]]], np.float32)
  valid = np.array([[True]])
  logits = np.array([[0.3, -0.2, 1.5]], np.float32)
  deltas = np.array([[[0.1, -0.1, 0.2, 0.0], [0, 0, 0, 0], [1, 1, 1, 1]]], np.float32)
  out = rpn.losses(logits, deltas, anchors, gt, valid, CONFIG, (100, 100))
  # Anchor 0 positive (best for the box), 1 and 2 negative; 3 samples < 256.
  y = np.array([1.0, 0.0, 0.0])
  p = 1 / (1 + np.exp(-logits[0]))
  bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
  assert float(out["rpn_objectness"]) == pytest.approx(bce.mean(), rel=1e-5)
  target = box_ops.encode(gt[0, 0], anchors[0], (1, 1, 1, 1)).numpy()
  d = np.abs(deltas[0, 0] - target)
  beta = CONFIG.rpn_smooth_l1_beta
  l1 = np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).sum()
  assert float(out["rpn_box"]) == pytest.approx(l1 / 3, rel=1e-5)


def test_proposals_sorted_clipped_and_suppressed():
  anchors = np.array([[0, 0, 20, 20], [1, 1, 21, 21], [50, 50, 80, 80], [-10, -10, 10, 10]],
                     np.float32)
  logits = np.array([[2.0, 1.0, 0.0, -1.0]], np.float32)
  deltas = np.zeros((1, 4, 4), np.float32)
  boxes, scores, valid = rpn.proposals(logits, deltas, anchors, (64, 64), 10, 4, 0.7)
  assert list(valid.numpy()[0]) == [True, True, True, False]  # anchor 1 suppressed by 0
  np.testing.assert_allclose(boxes.numpy()[0, :3], [[0, 0, 20, 20], [50, 50, 64, 64],
                                                    [0, 0, 10, 10]])
  np.testing.assert_allclose(scores.numpy()[0, :3], 1 / (1 + np.exp(-np.array([2.0, 0.0, -1.0]))),
                             rtol=1e-6)


def test_head_shapes():
  head = rpn.RPNHead(8, 9)
  logits, deltas = head(tf.zeros([2, 3, 5, 4]))
  assert logits.shape == (2, 3 * 5 * 9) and deltas.shape == (2, 3 * 5 * 9, 4)
