"""Anchors: sizes, aspect ratios, centres and order."""

import numpy as np

from cpc_tf.detection import anchors as anchor_lib


def test_cell_anchors_area_and_ratio():
  base = anchor_lib.cell_anchors((8.0, 16.0), (0.5, 1.0, 2.0)).numpy()
  assert base.shape == (6, 4)
  h = base[:, 2] - base[:, 0]
  w = base[:, 3] - base[:, 1]
  np.testing.assert_allclose(h * w, [64] * 3 + [256] * 3, rtol=1e-5)
  np.testing.assert_allclose(h / w, [0.5, 1, 2] * 2, rtol=1e-5)
  np.testing.assert_allclose(base[:, :2] + base[:, 2:], 0.0, atol=1e-5)  # centred


def test_grid_anchors_centres_and_order():
  scales, ratios = (10.0, 20.0, 40.0), (0.5, 1.0, 2.0)
  got = anchor_lib.grid_anchors(2, 3, 16, scales, ratios).numpy()
  assert got.shape == (2 * 3 * 9, 4)
  base = anchor_lib.cell_anchors(scales, ratios).numpy()
  for i in range(2):
    for j in range(3):
      for a in range(9):
        row = got[(i * 3 + j) * 9 + a]
        centre = np.array([16 * (i + 0.5), 16 * (j + 0.5)] * 2)
        np.testing.assert_allclose(row, base[a] + centre, atol=1e-4)
