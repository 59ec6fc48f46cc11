"""Per-patch colour augmentations: supp. A steps 2 (histogram), 3 and 4, and v1 colour drop.

Glossary: N patches (or images), H/W height / width (H = W = P for patches),
C = 3 channels, K segments of a histogram curve. Every function draws its
random parameters per patch and applies them in one batched pass.
"""

from __future__ import annotations

import itertools

import numpy as np
import tensorflow as tf

from cpc_tf.augment.common import (
    bernoulli, check_images, no_autograph, split_seed, uniform, where)

# Inception colour ops, applied in a random order per patch (supp. A step 3).
INCEPTION_OPS = ("brightness", "saturation", "hue", "contrast")
# NumPy, not tf.constant: importing the package must not start the TF runtime.
_ORDERS = np.array(list(itertools.permutations(range(len(INCEPTION_OPS)))), np.int32)


@no_autograph
def histogram(images, seed, knots: int = 4, strength: float = 0.5) -> tf.Tensor:
  """Random monotone intensity curve per channel of each patch (supp. A step 2).

  Interpretation of De Fauw et al.'s colour-histogram augmentation: remap each
  channel's histogram through a random increasing piecewise-linear curve from
  0 to 1 with K = knots equal-width segments whose slopes are
  exp(strength * N(0, 1)) (strength 0 is the identity). The curve is applied
  as a 256-entry lookup table on 8-bit levels, like PIL's Image.point: one
  gather per pixel instead of K ramps.
  """
  images = check_images(images, "histogram")
  n = tf.shape(images)[0]
  slopes = tf.exp(strength * tf.random.stateless_normal([n, 3, knots], seed))
  rises = slopes / tf.reduce_sum(slopes, axis=-1, keepdims=True)  # [N, 3, K], sums to 1
  # f(x) = sum_k rise_k * clip(K x - k, 0, 1), tabulated at the 256 levels.
  levels = tf.linspace(0.0, 1.0, 256)
  ramps = tf.clip_by_value(
      levels[:, None] * knots - tf.range(knots, dtype=tf.float32), 0.0, 1.0)  # [256, K]
  table = tf.clip_by_value(tf.einsum("nck,lk->ncl", rises, ramps), 0.0, 1.0)
  index = tf.cast(tf.round(images * 255.0), tf.int32)
  index += (tf.range(n)[:, None, None, None] * 3 + tf.range(3)) * 256
  out = tf.gather(tf.reshape(table, [-1]), index)
  out.set_shape(images.shape)
  return out


# RGB <-> YIQ (NTSC), as tf.image / tfa's adjust_hsv_in_yiq.
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)
# ITU-R 601 luma weights, as tf.image.rgb_to_grayscale.
_LUMA = np.array([0.2989, 0.5870, 0.1140], np.float32)


def _chroma_map(chroma: tf.Tensor) -> tf.Tensor:
  """[N, 2, 2] maps of the (I, Q) plane -> [N, 3, 3] RGB maps keeping luma Y."""
  n = tf.shape(chroma)[0]
  yiq = tf.concat([
      tf.concat([tf.ones([n, 1, 1]), tf.zeros([n, 1, 2])], axis=2),
      tf.concat([tf.zeros([n, 2, 1]), chroma], axis=2)], axis=1)
  return tf.constant(_YIQ_TO_RGB) @ yiq @ tf.constant(_RGB_TO_YIQ)


def _homogeneous(linear: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
  """[N, 3, 3], [N, 3] -> [N, 4, 4] affine colour map acting on (r, g, b, 1)."""
  n = tf.shape(linear)[0]
  top = tf.concat([linear, bias[:, :, None]], axis=2)
  bottom = tf.tile(tf.constant([[[0.0, 0.0, 0.0, 1.0]]]), [n, 1, 1])
  return tf.concat([top, bottom], axis=1)


@no_autograph
def inception_color(images, seed, p: float = 1.0, brightness: float = 32.0 / 255.0,
                    saturation: float = 0.5, hue: float = 0.2,
                    contrast: float = 0.5) -> tf.Tensor:
  """Szegedy et al. colour distortion with probability p per patch (supp. A step 3).

  Brightness delta in +-brightness, saturation factor in 1 +- saturation, hue
  delta in +-hue turns, contrast factor in 1 +- contrast (tf-slim
  inception_preprocessing ranges), applied in a random order drawn per patch
  and clipped to [0, 1] at the end, as tf-slim's distort_color does.

  Saturation scales and hue rotates the chroma plane of YIQ (tfa's
  adjust_hsv_in_yiq) instead of HSV. That makes all four ops affine colour
  maps, so each patch's ordered chain composes into one 4x4 matrix and the
  pixels are touched by a single batched matmul. Contrast blends with the
  per-channel mean at its place in the chain, which is the composed map
  applied to the input mean.
  """
  images = check_images(images, "inception_color")
  n = tf.shape(images)[0]
  s_apply, s_order, s_b, s_s, s_h, s_c = split_seed(seed, 6)
  delta = uniform(s_b, n, -brightness, brightness)
  sat = uniform(s_s, n, 1.0 - saturation, 1.0 + saturation)
  angle = uniform(s_h, n, -hue, hue) * (2.0 * np.pi)
  factor = uniform(s_c, n, 1.0 - contrast, 1.0 + contrast)
  order_index = tf.random.stateless_uniform(
      [n], s_order, minval=0, maxval=_ORDERS.shape[0], dtype=tf.int32)
  orders = tf.gather(_ORDERS, order_index)  # [N, 4]
  apply = bernoulli(s_apply, n, p)

  eye = tf.eye(3, batch_shape=[n])
  zeros = tf.zeros([n, 3])
  cos, sin = tf.cos(angle), tf.sin(angle)
  fixed = {
      "brightness": _homogeneous(eye, tf.tile(delta[:, None], [1, 3])),
      "saturation": _homogeneous(_chroma_map(sat[:, None, None] * tf.eye(2, batch_shape=[n])),
                                 zeros),
      "hue": _homogeneous(_chroma_map(tf.reshape(tf.stack([cos, -sin, sin, cos], 1),
                                                 [n, 2, 2])), zeros),
  }
  mean0 = tf.concat([tf.reduce_mean(images, axis=[1, 2]), tf.ones([n, 1])], axis=1)
  chain = tf.eye(4, batch_shape=[n])
  for position in range(len(INCEPTION_OPS)):
    mean = (chain @ mean0[:, :, None])[:, :3, 0]  # per-channel mean at this point
    maps = dict(fixed, contrast=_homogeneous(
        factor[:, None, None] * eye, (1.0 - factor)[:, None] * mean))
    candidates = tf.stack([maps[name] for name in INCEPTION_OPS] + [tf.eye(4, batch_shape=[n])],
                          axis=1)  # [N, 5, 4, 4]; the last one for skipped patches
    branch = tf.where(apply, orders[:, position], len(INCEPTION_OPS))
    chain = tf.gather(candidates, branch, batch_dims=1) @ chain
  shape = tf.shape(images)
  pixels = tf.reshape(images, [n, -1, 3])
  out = pixels @ tf.transpose(chain[:, :3, :3], [0, 2, 1]) + chain[:, None, :3, 3]
  out = tf.reshape(tf.clip_by_value(out, 0.0, 1.0), shape)
  out.set_shape(images.shape)
  return out


@no_autograph
def grayscale(images, seed, p: float = 1.0) -> tf.Tensor:
  """Projects each patch to grey (kept as 3 channels) with probability p (supp. A step 4).

  One batched [N, H*W, 3] x [N, 3, 3] product: the luma projection for the
  chosen patches, the identity (exact) for the others.
  """
  images = check_images(images, "grayscale")
  n = tf.shape(images)[0]
  luma = tf.tile(tf.constant(_LUMA)[:, None], [1, 3])  # every output channel = Y
  chosen = bernoulli(seed, n, p)[:, None, None]
  maps = tf.where(chosen, luma, tf.eye(3))  # [N, 3, 3]
  out = tf.reshape(tf.reshape(images, [n, -1, 3]) @ maps, tf.shape(images))
  out = tf.clip_by_value(out, 0.0, 1.0)
  out.set_shape(images.shape)
  return out


@no_autograph
def color_drop(images, seed, p: float = 1.0) -> tf.Tensor:
  """Keeps 1 random channel of 3 per patch or image, with probability p (arXiv v1 4.1).

  images [H, W, 3] or [N, H, W, 3]. As in Doersch et al. (2015), whose colour
  dropping CPC v1 adopts, each dropped channel becomes Gaussian noise with std
  1/100 of the kept channel's std, here around mid-grey 0.5 (the zero of
  mean-centred inputs), so the dropped channels carry no colour information.
  """
  images = check_images(images, "color_drop", ranks=(3, 4))
  single = images.shape.rank == 3
  if single:
    images = images[None]
  n = tf.shape(images)[0]
  s_apply, s_keep, s_noise = split_seed(seed, 3)
  keep = tf.random.stateless_uniform([n], s_keep, minval=0, maxval=3, dtype=tf.int32)
  kept = tf.one_hot(keep, 3)[:, None, None, :]  # [N, 1, 1, 3]
  channel = tf.reduce_sum(images * kept, axis=-1, keepdims=True)
  std = tf.math.reduce_std(channel, axis=[1, 2, 3], keepdims=True)
  noise = 0.5 + tf.random.stateless_normal(tf.shape(images), s_noise) * std / 100.0
  dropped = tf.clip_by_value(images * kept + noise * (1.0 - kept), 0.0, 1.0)
  out = where(bernoulli(s_apply, n, p), dropped, images)
  return out[0] if single else out


KEPT_CHANNEL = 1  # green, the channel closest to luminance


@no_autograph
def keep_channel(images, channel: int = KEPT_CHANNEL) -> tf.Tensor:
  """[..., 3] -> channel `channel` kept, the others mid-grey 0.5: colour dropping's
  deterministic form (`color_drop` without its draw and its 1/100 noise)."""
  images = tf.convert_to_tensor(images)
  if images.shape[-1] != 3 or channel not in (0, 1, 2):
    raise ValueError(f"keep_channel needs [..., 3] images and channel 0, 1 or 2; got "
                     f"shape {images.shape}, channel {channel}.")
  kept = tf.one_hot(channel, 3, dtype=images.dtype)
  return images * kept + 0.5 * (1.0 - kept)
