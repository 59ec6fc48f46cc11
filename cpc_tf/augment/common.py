"""Shared helpers of the augmentation package: input checks, seeds, per-patch switch.

Glossary: N patches (or images) augmented independently, H/W height / width
(H = W = P for patches), C = 3 RGB channels. Images are float32 in [0, 1].
A seed is an int32/int64 tensor of shape [2] for the `tf.random.stateless_*` ops.
"""

from __future__ import annotations

from typing import Callable, Sequence

import tensorflow as tf

# Fill of pixels that geometric ops bring in from outside the patch: mid-grey,
# as RandAugment's fill of 128 (Cubuk et al. 2019 reference code).
FILL_VALUE = 0.5


def no_autograph(fn: Callable) -> Callable:
  """Decorator: trace fn as plain Python inside tf.function / tf.data map.

  Its branches depend only on Python values (config switches, static shapes),
  so AutoGraph's conversion adds nothing but trace time (3x for the whole
  pipeline inside tf.data map).
  """
  return tf.autograph.experimental.do_not_convert(fn)


def check_images(images, name: str, ranks: Sequence[int] = (4,)) -> tf.Tensor:
  """Converts to a float32 tensor and checks rank and RGB channels.

  Raises ValueError naming the shape when the rank is not in `ranks`, when the
  channel count is known and not 3, or when the dtype is not float32.
  """
  images = tf.convert_to_tensor(images)
  want = " or ".join({3: "[H, W, 3]", 4: "[N, H, W, 3]"}[r] for r in ranks)
  if images.shape.rank not in ranks:
    raise ValueError(f"{name} expects {want} float32 images in [0, 1], got shape "
                     f"{images.shape}.")
  if images.shape[-1] is not None and images.shape[-1] != 3:
    raise ValueError(f"{name} expects 3 (RGB) channels, got shape {images.shape}.")
  if images.dtype != tf.float32:
    raise ValueError(f"{name} expects float32 images in [0, 1], got dtype "
                     f"{images.dtype.name} with shape {images.shape}; convert with "
                     "tf.image.convert_image_dtype first.")
  if images.shape[-1] is None:
    images = tf.ensure_shape(images, [None] * (images.shape.rank - 1) + [3])
  return images


def check_seed(seed) -> tf.Tensor:
  """Returns the seed as an int64 tensor of shape [2], or raises ValueError."""
  seed = tf.convert_to_tensor(seed)
  if not seed.dtype.is_integer or seed.shape.rank != 1 or seed.shape[0] not in (2, None):
    raise ValueError(f"A stateless seed is an integer tensor of shape [2], got "
                     f"{seed.dtype.name} with shape {seed.shape}.")
  return tf.cast(seed, tf.int64)


def split_seed(seed, num: int) -> list[tf.Tensor]:
  """`num` independent [2] seeds derived from `seed`."""
  seeds = tf.random.experimental.stateless_split(check_seed(seed), num=num)
  return [seeds[i] for i in range(num)]


def uniform(seed, n, low=0.0, high=1.0) -> tf.Tensor:
  """[n] float32 draws in [low, high): one independent value per patch."""
  return tf.random.stateless_uniform([n], seed, minval=low, maxval=high)


def bernoulli(seed, n, p: float) -> tf.Tensor:
  """[n] bool, each True with probability p."""
  return uniform(seed, n) < p


def random_sign(seed, n) -> tf.Tensor:
  """[n] float32 of +-1, the random negation of RandAugment's symmetric ops."""
  return tf.where(bernoulli(seed, n, 0.5), 1.0, -1.0)


def per_patch(values: tf.Tensor) -> tf.Tensor:
  """[N] -> [N, 1, 1, 1], to broadcast a per-patch parameter over pixels."""
  return tf.reshape(values, [-1, 1, 1, 1])


def switch(images: tf.Tensor, branch: tf.Tensor,
           fns: Sequence[Callable[..., tf.Tensor]], *params: tf.Tensor) -> tf.Tensor:
  """Applies fns[branch[i]] to images[i], each function once on its subset.

  images [N, H, W, C]; branch int32 [N] in [0, len(fns)); params are [N, ...]
  tensors partitioned like images and passed to the functions. Every function
  runs once, batched, on the patches that chose it (possibly none), so the cost
  is about one op per patch instead of len(fns) ops per patch as with masks.
  """
  k = len(fns)
  n = tf.shape(images)[0]
  index_parts = tf.dynamic_partition(tf.range(n), branch, k)
  image_parts = tf.dynamic_partition(images, branch, k)
  param_parts = [tf.dynamic_partition(p, branch, k) for p in params]
  outs = []
  for i, fn in enumerate(fns):
    outs.append(fn(image_parts[i], *[parts[i] for parts in param_parts]))
  out = tf.dynamic_stitch(index_parts, outs)
  out.set_shape(images.shape)
  return out


def where(mask: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
  """Per-patch select: mask [N] bool, a and b [N, H, W, C] (finite values).

  a * m + b * (1 - m) with m in {0, 1} is exact, and on CPU about 4x faster
  than tf.where with a broadcast [N, 1, 1, 1] condition.
  """
  m = per_patch(tf.cast(mask, a.dtype))
  return a * m + b * (1.0 - m)


def blend(degenerate: tf.Tensor, images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """PIL ImageEnhance: degenerate + factor * (images - degenerate), clipped to [0, 1].

  factor [N]: 0 gives the degenerate image, 1 the input, > 1 extrapolates.
  """
  return tf.clip_by_value(
      degenerate + per_patch(factor) * (images - degenerate), 0.0, 1.0)


def luminance(images: tf.Tensor) -> tf.Tensor:
  """[N, H, W, 3] -> [N, H, W, 1], ITU-R 601 luma as tf.image.rgb_to_grayscale."""
  return tf.image.rgb_to_grayscale(images)
