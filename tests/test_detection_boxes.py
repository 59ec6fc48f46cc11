"""Box ops: IoU against hand values, encode/decode round trip, clipping."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.detection import boxes as box_ops


def test_iou_hand_values():
  a = np.array([[0, 0, 10, 10], [0, 0, 0, 0]], np.float32)
  b = np.array([[0, 0, 10, 10], [5, 5, 15, 15], [20, 20, 30, 30], [0, 0, 10, 5]], np.float32)
  got = box_ops.iou(a, b).numpy()
  expected = np.array([[1.0, 25 / 175, 0.0, 0.5], [0.0, 0.0, 0.0, 0.0]])
  np.testing.assert_allclose(got, expected, atol=1e-6)


def test_iou_batched_matches_loop():
  rng = np.random.default_rng(0)
  a = rng.uniform(0, 50, (2, 5, 2)); a = np.concatenate([a, a + rng.uniform(1, 20, a.shape)], -1)
  b = rng.uniform(0, 50, (2, 3, 2)); b = np.concatenate([b, b + rng.uniform(1, 20, b.shape)], -1)
  got = box_ops.iou(a, b).numpy()
  for i in range(2):
    np.testing.assert_allclose(got[i], box_ops.iou(a[i], b[i]).numpy(), atol=1e-6)


@pytest.mark.parametrize("weights", [(10.0, 10.0, 5.0, 5.0), (1.0, 1.0, 1.0, 1.0)])
def test_encode_decode_round_trip(weights):
  rng = np.random.default_rng(1)
  anchors = rng.uniform(0, 100, (20, 2)); anchors = np.concatenate(
      [anchors, anchors + rng.uniform(4, 60, (20, 2))], -1).astype(np.float32)
  boxes = rng.uniform(0, 100, (20, 2)); boxes = np.concatenate(
      [boxes, boxes + rng.uniform(4, 60, (20, 2))], -1).astype(np.float32)
  deltas = box_ops.encode(boxes, anchors, weights)
  np.testing.assert_allclose(box_ops.decode(deltas, anchors, weights).numpy(), boxes,
                             rtol=1e-5, atol=1e-3)


def test_encode_hand_value_with_standard_weights():
  anchor = np.array([[0, 0, 10, 20]], np.float32)  # centre (5, 10), h 10, w 20
  box = np.array([[2, 4, 22, 24]], np.float32)  # centre (12, 14), h 20, w 20
  got = box_ops.encode(box, anchor).numpy()[0]
  expected = [10 * 7 / 10, 10 * 4 / 20, 5 * np.log(2.0), 5 * np.log(1.0)]
  np.testing.assert_allclose(got, expected, atol=1e-5)


def test_decode_clamps_huge_scales():
  out = box_ops.decode(tf.constant([[0.0, 0.0, 1e4, 1e4]]), tf.constant([[0.0, 0.0, 1.0, 1.0]]))
  assert np.all(np.isfinite(out.numpy()))


def test_clip():
  boxes = np.array([[-5, -1, 50, 200], [10, 10, 20, 20]], np.float32)
  got = box_ops.clip(boxes, 40, 100).numpy()
  np.testing.assert_array_equal(got, [[0, 0, 40, 100], [10, 10, 20, 20]])


def test_bad_shape():
  with pytest.raises(ValueError, match="4 coordinates"):
    box_ops.area(tf.zeros([3, 5]))
