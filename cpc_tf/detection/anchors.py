"""Anchors: A = scales x ratios boxes centred on every cell of a feature grid.

Glossary: Hf, Wf feature grid size, A anchors per cell, s feature stride (px).
Ren et al. 2015 3.1.1: 3 scales x 3 aspect ratios per position; the ratio is
height / width and every anchor of one scale has area scale^2.
"""

from __future__ import annotations

import tensorflow as tf


def cell_anchors(scales, ratios) -> tf.Tensor:
  """[A, 4] anchors centred on (0, 0), ordered scale-major: index = si * len(ratios) + ri."""
  rows = []
  for s in scales:
    for r in ratios:
      h = float(s) * float(r) ** 0.5
      w = float(s) / float(r) ** 0.5
      rows.append([-0.5 * h, -0.5 * w, 0.5 * h, 0.5 * w])
  return tf.constant(rows, tf.float32)


def grid_anchors(height, width, stride: int, scales, ratios) -> tf.Tensor:
  """Anchors of a Hf x Wf grid: [Hf * Wf * A, 4] px, ordered (row, column, anchor).

  Cell (i, j) covers pixels [s i, s (i + 1)) and its anchors are centred at
  (s (i + 0.5), s (j + 0.5)). The order matches reshaping a [Hf, Wf, A * k]
  head output to [Hf * Wf * A, k].
  """
  base = cell_anchors(scales, ratios)  # [A, 4]
  ys = (tf.cast(tf.range(height), tf.float32) + 0.5) * stride
  xs = (tf.cast(tf.range(width), tf.float32) + 0.5) * stride
  cy, cx = tf.meshgrid(ys, xs, indexing="ij")  # [Hf, Wf]
  centers = tf.stack([cy, cx, cy, cx], axis=-1)[:, :, None, :]  # [Hf, Wf, 1, 4]
  return tf.reshape(centers + base[None, None], [-1, 4])
