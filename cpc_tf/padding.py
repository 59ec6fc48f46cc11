"""Symmetric (mirror) padding of H and W with a hand-written gradient (a speed-up).

Glossary: N images or patches, h/w map size, C channels.

Same numbers as `tf.pad(mode="SYMMETRIC")`, whose MirrorPad / MirrorPadGrad are
slow on small maps. The forward pass is one gather of the padded map's pixels
from the flattened input (tf.pad when the map size is unknown); the gradient
adds each padded row / column onto the one it mirrors, as one batched matmul
with the 0/1 fold matrix on maps of at most 64 pixels and by slices above.
Timings: benchmarks/pretrain_bench.md.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def _fold(dy, axis: int, before: int, after: int):
  """Gradient of a symmetric pad along `axis`: [.., n, ..] -> [.., n - before - after, ..]."""
  n = dy.shape[axis]

  def part(start, stop):
    index = [slice(None)] * dy.shape.rank
    index[axis] = slice(start, stop)
    return dy[tuple(index)]

  # Padded row before-1-k mirrors input row k; padded row n-after+k mirrors input
  # row m-1-k (m = n - before - after input rows).
  pieces = [part(before, 2 * before) + tf.reverse(part(0, before), [axis])] if before else []
  pieces.append(part(2 * before, n - 2 * after))
  if after:
    pieces.append(part(n - 2 * after, n - after) + tf.reverse(part(n - after, n), [axis]))
  return tf.concat(pieces, axis)


def _mirror_indices(n: int, before: int, after: int) -> list[int]:
  """Source row of each padded row: before-1..0, 0..n-1, n-1..n-after (edges repeated)."""
  return [*range(before - 1, -1, -1), *range(n), *range(n - 1, n - 1 - after, -1)]


def _gather_pad(x: tf.Tensor, before: int, after: int) -> tf.Tensor:
  """tf.pad(x, SYMMETRIC) for static h, w: one gather on [N, h*w, C]."""
  h, w, c = x.shape[1], x.shape[2], x.shape[3]
  rows = tf.constant(_mirror_indices(h, before, after))
  cols = tf.constant(_mirror_indices(w, before, after))
  pixels = tf.reshape(rows[:, None] * w + cols[None, :], [-1])  # in the graph: no (h*w)-
  n = tf.shape(x)[0]                                             # sized constant saved
  flat = tf.gather(tf.reshape(x, [n, h * w, c]), pixels, axis=1)
  return tf.reshape(flat, [n, h + before + after, w + before + after, c])


def _fold_matrix(h: int, w: int, before: int, after: int) -> np.ndarray:
  """[h*w, H*W] 0/1: input pixel <- the padded pixels that copy it (H, W padded sizes)."""
  rows, cols = _mirror_indices(h, before, after), _mirror_indices(w, before, after)
  fold = np.zeros([h * w, len(rows) * len(cols)], np.float32)
  for a, i in enumerate(rows):
    for b, j in enumerate(cols):
      fold[i * w + j, a * len(cols) + b] += 1.0
  return fold


_MATMUL_FOLD_PIXELS = 64  # measured: the matmul wins on 8x8 maps, the slices from 12x12


def symmetric_pad(x: tf.Tensor, before: int, after: int) -> tf.Tensor:
  """[N, h, w, C] -> [N, h + before + after, w + before + after, C], mirrored edges."""
  paddings = [[0, 0], [before, after], [before, after], [0, 0]]

  @tf.custom_gradient
  def pad(x):
    def grad(dy):
      h, w = x.shape[1], x.shape[2]
      if h is None or w is None or min(h, w) < before + after:
        # Unknown or tiny maps: the folds would overlap; use TensorFlow's own gradient.
        return tf.raw_ops.MirrorPadGrad(input=dy, paddings=paddings, mode="SYMMETRIC")
      if h * w <= _MATMUL_FOLD_PIXELS and dy.shape[3] is not None:
        fold = tf.constant(_fold_matrix(h, w, before, after), dy.dtype)[None]  # [1, hw, HW]
        n, c = tf.shape(dy)[0], dy.shape[3]
        flat = tf.reshape(dy, [n, dy.shape[1] * dy.shape[2], c])
        return tf.reshape(tf.matmul(fold, flat), [n, h, w, c])
      return _fold(_fold(dy, 1, before, after), 2, before, after)
    h, w = x.shape[1], x.shape[2]
    if h is None or w is None or x.shape[3] is None or min(h, w) < max(before, after):
      return tf.pad(x, paddings, mode="SYMMETRIC"), grad  # also tf.pad's error on tiny maps
    return _gather_pad(x, before, after), grad

  return pad(x)
