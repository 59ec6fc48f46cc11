"""Images -> overlapping patch grid, and the fold of patches into the batch.

Glossary: B batch, H/W image size, C channels, Gh/Gw grid rows/columns,
P patch size, S stride, N = B * Gh * Gw patches, D feature depth.
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.configs import GridConfig

# The paper's grids (name -> GridConfig).
PRESET_GRIDS = {
    "cpc_v2": GridConfig(image_size=260, patch_size=80, stride=36, resize_to=300),  # supp. A
    "linear_iclr": GridConfig(image_size=240, patch_size=80, stride=32, resize_to=240),  # ICLR A.3
    "cpc_v1": GridConfig(image_size=256, patch_size=64, stride=32, resize_to=256),  # arXiv v1 3.1
}


def grid_size(size: int, patch_size: int, stride: int) -> int:
  """Number of patches along a side of `size` pixels; raises if they do not tile."""
  return GridConfig(image_size=size, patch_size=patch_size, stride=stride).grid_size


def extract_patches(images: tf.Tensor, patch_size: int, stride: int) -> tf.Tensor:
  """[B, H, W, C] -> [B, Gh, Gw, P, P, C]; patch (i, j) is images[:, iS:iS+P, jS:jS+P].

  H and W must be static. Raises ValueError when P and S do not tile H and W.
  """
  images = tf.convert_to_tensor(images)
  if images.shape.rank != 4:
    raise ValueError(f"extract_patches expects [B, H, W, C] images, got shape {images.shape}.")
  _, h, w, c = images.shape
  if h is None or w is None or c is None:
    raise ValueError(f"extract_patches needs static H, W, C; got shape {images.shape}.")
  gh = grid_size(h, patch_size, stride)
  gw = grid_size(w, patch_size, stride)
  flat = tf.image.extract_patches(
      images, sizes=[1, patch_size, patch_size, 1], strides=[1, stride, stride, 1],
      rates=[1, 1, 1, 1], padding="VALID")  # [B, Gh, Gw, P*P*C], (P, P, C) row-major
  return tf.reshape(flat, [-1, gh, gw, patch_size, patch_size, c])


def fold(patches: tf.Tensor) -> tf.Tensor:
  """[B, Gh, Gw, P, P, C] -> [B*Gh*Gw, P, P, C] (patches become batch elements)."""
  s = patches.shape
  return tf.reshape(patches, [-1, s[3], s[4], s[5]])


def unfold(features: tf.Tensor, grid_rows: int, grid_cols: int) -> tf.Tensor:
  """[B*Gh*Gw, D] -> [B, Gh, Gw, D]: one feature vector per patch back on its grid."""
  return tf.reshape(features, [-1, grid_rows, grid_cols, features.shape[-1]])
