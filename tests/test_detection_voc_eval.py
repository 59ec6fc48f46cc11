"""VOC07 mAP against hand-computed average precisions (to 1e-6)."""

import numpy as np
import pytest

from cpc_tf.detection.voc_eval import VOCEvaluator, average_precision

G1 = [0, 0, 10, 10]
G2 = [20, 20, 30, 30]
FAR = [50, 50, 60, 60]


def _ap(images, num_classes=1, use_07=True):
  ev = VOCEvaluator(num_classes, use_07_metric=use_07)
  for gt, det in images:
    gt_boxes = [g[0] for g in gt]
    gt_classes = [g[1] for g in gt]
    gt_difficult = [g[2] for g in gt]
    ev.add_image(gt_boxes, gt_classes, gt_difficult,
                 [d[0] for d in det], [d[1] for d in det], [d[2] for d in det])
  return ev.result()


def test_basic_two_images():
  # Ranked: TP (0.9), FP (0.8), TP (0.7): recall .5 .5 1, precision 1 .5 2/3.
  images = [([(G1, 0, False)], [(G1, 0.9, 0), (FAR, 0.8, 0)]),
            ([(G2, 0, False)], [(G2, 0.7, 0)])]
  # 11-point: thresholds 0..0.5 see precision 1, 0.6..1 see 2/3.
  assert _ap(images)["map"] == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-6)
  # All-point: 0.5 * 1 + 0.5 * 2/3.
  assert _ap(images, use_07=False)["map"] == pytest.approx(5 / 6, abs=1e-6)


def test_ties_keep_insertion_order():
  # Equal scores: the FP added first ranks first -> precision 0 then 1/2.
  images = [([(G1, 0, False)], [(FAR, 0.9, 0), (G1, 0.9, 0)])]
  assert _ap(images)["map"] == pytest.approx(0.5, abs=1e-6)
  images = [([(G1, 0, False)], [(G1, 0.9, 0), (FAR, 0.9, 0)])]
  assert _ap(images)["map"] == pytest.approx(1.0, abs=1e-6)


def test_difficult_neither_true_nor_false_positive():
  # d1 hits the difficult box: ignored; then TP, then FP -> precision 1 at recall 1.
  images = [([(G1, 0, False), (G2, 0, True)], [(G2, 0.9, 0), (G1, 0.8, 0), (FAR, 0.7, 0)])]
  assert _ap(images)["map"] == pytest.approx(1.0, abs=1e-6)
  assert _ap(images, use_07=False)["map"] == pytest.approx(1.0, abs=1e-6)
  # The difficult box is no positive: finding only it leaves recall 0.
  images = [([(G1, 0, False), (G2, 0, True)], [(G2, 0.9, 0)])]
  assert _ap(images)["map"] == pytest.approx(0.0, abs=1e-6)


def test_duplicates_are_false_positives():
  # TP on G1, duplicate on G1 (FP), TP on G2: as test_basic_two_images.
  images = [([(G1, 0, False), (G2, 0, False)],
             [(G1, 0.9, 0), ([0, 0, 10, 9.5], 0.8, 0), (G2, 0.7, 0)])]
  assert _ap(images)["map"] == pytest.approx((6 + 5 * 2 / 3) / 11, abs=1e-6)


def test_class_without_ground_truth_is_left_out():
  images = [([(G1, 0, False)], [(G1, 0.9, 0), (G2, 0.95, 1)])]
  result = _ap(images, num_classes=2)
  assert result["ap"][0] == pytest.approx(1.0, abs=1e-6)
  assert np.isnan(result["ap"][1])
  assert result["map"] == pytest.approx(1.0, abs=1e-6)


def test_empty_detections():
  images = [([(G1, 0, False)], []), ([(G2, 0, False)], [])]
  result = _ap(images)
  assert result["ap"][0] == 0.0 and result["map"] == 0.0


def test_iou_threshold_is_strict():
  # IoU exactly 0.5 is not a match (devkit: ovmax > ovthresh).
  images = [([(G1, 0, False)], [([0, 0, 10, 5], 0.9, 0)])]
  assert _ap(images)["map"] == 0.0


def test_wrong_class_is_false_positive():
  images = [([(G1, 0, False), (G2, 1, False)], [(G2, 0.9, 0), (G1, 0.8, 0), (G2, 0.7, 1)])]
  result = _ap(images, num_classes=2)
  # class 0: FP then TP -> precision .5 at recall 1; class 1: one TP.
  assert result["ap"] == pytest.approx([0.5, 1.0], abs=1e-6)
  assert result["map"] == pytest.approx(0.75, abs=1e-6)


def test_average_precision_11_point_hand_curve():
  recall = [0.2, 0.4, 0.4, 0.8]
  precision = [1.0, 1.0, 0.5, 0.8]
  # t=0..0.4 (5 thresholds): 1; t=0.5..0.8 (4): 0.8; t=0.9, 1.0: 0.
  assert average_precision(recall, precision) == pytest.approx((5 + 4 * 0.8) / 11, abs=1e-6)
  assert average_precision(recall, precision, use_07_metric=False) == pytest.approx(
      0.4 * 1.0 + 0.4 * 0.8, abs=1e-6)


def test_add_batch_reads_padding():
  ev = VOCEvaluator(1)
  gt_boxes = np.array([[G1, [0, 0, 0, 0]]], np.float32)
  labels = np.array([[0, -1]])
  difficult = np.zeros((1, 2), bool)
  det = {"boxes": np.array([[G1, FAR]], np.float32), "scores": np.array([[0.9, 0.95]]),
         "classes": np.array([[0, 0]]), "valid": np.array([[True, False]])}
  ev.add_batch(gt_boxes, labels, difficult, det)
  assert ev.result()["map"] == pytest.approx(1.0, abs=1e-6)


def test_bad_input():
  ev = VOCEvaluator(2)
  with pytest.raises(ValueError, match="outside"):
    ev.add_image([G1], [2], [False], [], [], [])
  with pytest.raises(ValueError, match="must match"):
    ev.add_image([G1], [0, 1], [False], [], [], [])
