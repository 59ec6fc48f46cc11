"""NMS against a brute-force greedy NumPy reference."""

import numpy as np

from cpc_tf.detection import nms


def _iou(a, b):
  inter = (max(0, min(a[2], b[2]) - max(a[0], b[0])) *
           max(0, min(a[3], b[3]) - max(a[1], b[1])))
  union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
  return inter / union


def _greedy(boxes, scores, k, threshold, score_threshold=-np.inf):
  keep = []
  for i in sorted(range(len(scores)), key=lambda i: -scores[i]):
    if scores[i] > score_threshold and all(_iou(boxes[i], boxes[j]) <= threshold for j in keep):
      keep.append(i)
    if len(keep) == k:
      break
  return keep


def _random(rng, shape):
  corner = rng.uniform(0, 50, shape + (2,))
  return np.concatenate([corner, corner + rng.uniform(3, 30, shape + (2,))], -1).astype(np.float32)


def test_batched_nms_matches_brute_force():
  rng = np.random.default_rng(0)
  for _ in range(10):
    boxes = _random(rng, (3, 30))
    scores = rng.permutation(90).reshape(3, 30).astype(np.float32) / 90  # no ties
    index, valid = nms.batched_nms(boxes, scores, 8, 0.4, score_threshold=0.2)
    index, valid = index.numpy(), valid.numpy()
    for b in range(3):
      assert list(index[b][valid[b]]) == _greedy(boxes[b], scores[b], 8, 0.4, 0.2)
      assert np.all(index[b][~valid[b]] == 0)


def test_per_class_nms_matches_brute_force():
  rng = np.random.default_rng(1)
  boxes = _random(rng, (2, 20, 3))
  scores = rng.permutation(120).reshape(2, 20, 3).astype(np.float32) / 120
  out_boxes, out_scores, out_classes, valid = nms.per_class_nms(
      boxes, scores, max_per_class=5, max_total=12, iou_threshold=0.3, score_threshold=0.1)
  for b in range(2):
    expected = []
    for c in range(3):
      for i in _greedy(boxes[b, :, c], scores[b, :, c], 5, 0.3, 0.1):
        expected.append((scores[b, i, c], c, tuple(boxes[b, i, c])))
    expected = sorted(expected, key=lambda e: -e[0])[:12]
    n = int(valid[b].numpy().sum())
    assert n == len(expected)
    np.testing.assert_allclose(out_scores[b, :n], [e[0] for e in expected], atol=1e-6)
    assert list(out_classes[b, :n].numpy()) == [e[1] for e in expected]
    np.testing.assert_allclose(out_boxes[b, :n], [e[2] for e in expected], atol=1e-5)
