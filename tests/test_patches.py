"""Patch grid: shapes, pixel content, presets and the tiling error."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import patches
from cpc_tf.configs import GridConfig


@pytest.mark.parametrize("name,grid", [("cpc_v2", 6), ("linear_iclr", 6), ("cpc_v1", 7)])
def test_paper_grids(name, grid):
  g = patches.PRESET_GRIDS[name]
  assert g.grid_size == grid
  out = patches.extract_patches(tf.zeros([1, g.image_size, g.image_size, 3]),
                                g.patch_size, g.stride)
  assert out.shape == (1, grid, grid, g.patch_size, g.patch_size, 3)


@pytest.mark.parametrize("size,p,s", [(260, 80, 36), (32, 8, 8), (20, 8, 4)])
def test_each_patch_equals_its_slice(size, p, s):
  images = tf.random.stateless_uniform([2, size, size + s, 3], seed=[0, 1])
  out = patches.extract_patches(images, p, s).numpy()
  gh, gw = (size - p) // s + 1, (size + s - p) // s + 1
  assert out.shape == (2, gh, gw, p, p, 3)
  for i in range(gh):
    for j in range(gw):
      np.testing.assert_array_equal(out[:, i, j], images.numpy()[:, i * s:i * s + p,
                                                                  j * s:j * s + p])


def test_fold_unfold_round_trip():
  x = tf.reshape(tf.range(2 * 3 * 4 * 5 * 5 * 1, dtype=tf.float32), [2, 3, 4, 5, 5, 1])
  folded = patches.fold(x)
  assert folded.shape == (24, 5, 5, 1)
  np.testing.assert_array_equal(folded[7], x[0, 1, 3])
  features = tf.reshape(folded, [24, -1])
  np.testing.assert_array_equal(patches.unfold(features, 3, 4)[1, 2, 0], features[20])


@pytest.mark.parametrize("size,p,s", [(260, 80, 32), (64, 80, 16), (64, 16, 0)])
def test_non_tiling_is_a_clear_error(size, p, s):
  with pytest.raises(ValueError, match="does not tile"):
    patches.extract_patches(tf.zeros([1, size, size, 3]), p, s)


def test_rejects_wrong_rank():
  with pytest.raises(ValueError, match=r"\[B, H, W, C\]"):
    patches.extract_patches(tf.zeros([8, 8, 3]), 4, 4)


def test_grid_config_error_suggests_a_fix():
  with pytest.raises(ValueError, match="image_size="):
    GridConfig(image_size=250, patch_size=80, stride=36).grid_size
