"""v1-era per-patch geometry (arXiv v1 4.1): horizontal flip and spatial jitter.

Glossary: N patches, H/W height / width (H = W = P for patches), C = 3
channels, J the jitter crop size (v1: a 56 px crop of a 64 px patch).
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.augment import geometry
from cpc_tf.augment.common import (
    bernoulli, check_images, no_autograph, split_seed, where)


@no_autograph
def flip(images, seed, p: float = 0.5) -> tf.Tensor:
  """Mirrors each patch left-right with probability p."""
  images = check_images(images, "flip")
  return where(bernoulli(seed, tf.shape(images)[0], p), tf.reverse(images, [2]), images)


@no_autograph
def jitter(images, seed, size: int) -> tf.Tensor:
  """Random J x J crop of each patch, zero-padded back to H x W around the centre.

  The crop's offset is drawn per patch, so its content shifts by up to
  (H - J) / 2 pixels while the padded frame stays fixed: the position of a
  patch's content no longer reveals its place in the grid exactly.
  """
  images = check_images(images, "jitter")
  h, w = images.shape[1], images.shape[2]
  if size < 1 or (h is not None and w is not None and size > min(h, w)):
    raise ValueError(f"jitter size {size} must lie in [1, min(H, W)] for patches of "
                     f"shape {images.shape}.")
  shape = tf.shape(images)
  n, h, w = shape[0], shape[1], shape[2]
  s_y, s_x = split_seed(seed, 2)
  off_y = tf.random.stateless_uniform([n], s_y, 0, h - size + 1, dtype=tf.int32)
  off_x = tf.random.stateless_uniform([n], s_x, 0, w - size + 1, dtype=tf.int32)
  top, left = (h - size) // 2, (w - size) // 2
  # Output (y, x) in the centred window reads input (y - top + off_y, x - left + off_x):
  # an integer translation, exact with nearest-neighbour sampling.
  shift = tf.cast(tf.stack([off_y - top, off_x - left], axis=1), tf.float32)
  linear = tf.eye(2, batch_shape=[n])
  moved = geometry.transform(images, geometry.affine_transforms(linear, shift, h, w),
                             interpolation="NEAREST", fill_value=0.0)
  out = moved * tf.cast(_centred_window(h, w, size), tf.float32)[None, :, :, None]
  out.set_shape(images.shape)
  return out


@no_autograph
def centre_jitter(images, size: int) -> tf.Tensor:
  """The jitter's deterministic counterpart: the centred J x J window, frame zeroed.

  images [..., H, W, C]. Test patches of an encoder pre-trained with `jitter`
  get the frame its training patches always had, as a centre crop stands in
  for random crops (arXiv v1 4.1 is silent on test patches).
  """
  images = tf.convert_to_tensor(images)
  h, w = images.shape[-3], images.shape[-2]
  if h is None or w is None or size < 1 or size > min(h, w):
    raise ValueError(f"centre_jitter size {size} must lie in [1, min(H, W)] for patches "
                     f"of static shape {images.shape}.")
  return images * tf.cast(_centred_window(h, w, size), images.dtype)[:, :, None]


def _centred_window(h, w, size: int) -> tf.Tensor:
  """[H, W] bool: True inside the centred size x size window, the jitter's frame False."""
  top, left = (h - size) // 2, (w - size) // 2
  rows = tf.range(h)[:, None]
  cols = tf.range(w)[None, :]
  return (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
