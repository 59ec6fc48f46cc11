"""RoIAlign against a NumPy bilinear reference; 2x2 pooling."""

import numpy as np
import pytest

from cpc_tf.detection import roi_align as ra


def _bilinear(fmap, y, x):
  """Edge-clamped bilinear read of fmap [H, W, D] at continuous cell coordinates."""
  h, w = fmap.shape[:2]
  y, x = np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)
  y0, x0 = int(np.floor(y)), int(np.floor(x))
  y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
  dy, dx = y - y0, x - x0
  return ((1 - dy) * (1 - dx) * fmap[y0, x0] + (1 - dy) * dx * fmap[y0, x1] +
          dy * (1 - dx) * fmap[y1, x0] + dy * dx * fmap[y1, x1])


def _reference(fmap, box, stride, size):
  ymin, xmin, ymax, xmax = np.asarray(box, np.float64) / stride
  out = np.zeros((size, size, fmap.shape[-1]))
  for i in range(size):
    for j in range(size):
      y = ymin + (i + 0.5) * (ymax - ymin) / size - 0.5
      x = xmin + (j + 0.5) * (xmax - xmin) / size - 0.5
      out[i, j] = _bilinear(fmap, y, x)
  return out


def test_roi_align_matches_numpy_bilinear():
  rng = np.random.default_rng(0)
  fmap = rng.normal(size=(2, 6, 7, 3)).astype(np.float32)
  stride = 16
  boxes = np.array([[[0, 0, 96, 112], [10, 20, 50, 90], [33.3, 5.5, 70.1, 40.7]],
                    [[0, 0, 16, 16], [40, 60, 95, 111], [1, 2, 3, 4]]], np.float32)
  got = ra.roi_align(fmap, boxes, stride, size=14).numpy()
  assert got.shape == (2, 3, 14, 14, 3)
  for b in range(2):
    for r in range(3):
      np.testing.assert_allclose(got[b, r], _reference(fmap[b], boxes[b, r], stride, 14),
                                 atol=1e-5)


def test_pool_half():
  crops = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(ra.pool_half(crops, "max").numpy()[0, :, :, 0], [[5, 7], [13, 15]])
  np.testing.assert_allclose(ra.pool_half(crops, "avg").numpy()[0, :, :, 0],
                             [[2.5, 4.5], [10.5, 12.5]])
  with pytest.raises(ValueError, match="Unknown pooling"):
    ra.pool_half(crops, "median")


def test_bad_shapes():
  with pytest.raises(ValueError, match="roi_align wants"):
    ra.roi_align(np.zeros((1, 4, 4, 2), np.float32), np.zeros((3, 4), np.float32), 16)
