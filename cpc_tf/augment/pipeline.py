"""The per-patch augmentation of supp. A (steps 1-4) and of arXiv v1 4.1, from a config.

Glossary: N patches, P patch size, H/W image height / width, C = 3 channels.

Order, as listed in supp. A: (1) two RandAugment ops, (2) elastic deformation
and shear, then colour histogram, (3) Inception colour, (4) grey-scale; then
the v1-era ops: colour drop, horizontal flip, spatial jitter (jitter last, so
its zero frame is not recoloured). A step whose probability is 0 (or switch
False) is skipped entirely, so it is exactly the identity.
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.augment import color, elastic, v1
from cpc_tf.augment.common import (
    bernoulli, check_images, no_autograph, split_seed, switch)
from cpc_tf.augment.randaugment import rand_augment
from cpc_tf.configs import AugmentConfig


def test_form(patches, config: AugmentConfig) -> tf.Tensor:
  """[..., P, P, 3] -> the deterministic form of the v1 steps that change EVERY patch.

  For test patches of an encoder whose training patches all carried a v1 mark,
  in the training order: colour dropping at p = 1 keeps one channel
  (`color.keep_channel`), flipping at p = 1 mirrors, spatial jitter leaves its
  zero frame around a centred crop (`v1.centre_jitter`). A step drawn with
  p < 1 left some training patches plain, so plain test patches are in
  distribution: it is left out. The texts are silent on test patches (arXiv v1
  4.1, supp. B).
  """
  x = tf.convert_to_tensor(patches)
  if config.color_drop_p >= 1.0:
    x = color.keep_channel(x)
  if config.flip_p >= 1.0:
    x = tf.reverse(x, [-2])
  if config.jitter_size > 0:
    x = v1.centre_jitter(x, config.jitter_size)
  return x


def _with_probability(images, seed, p, fn):
  """Applies fn (images, seed) to a random subset of patches, each with probability p.

  fn runs once, on the chosen patches only: cheaper than computing it for all
  and masking when p is small (p = 0.2 in supp. A step 2).
  """
  s_apply, s_fn = split_seed(seed, 2)
  chosen = tf.cast(bernoulli(s_apply, tf.shape(images)[0], p), tf.int32)
  return switch(images, chosen, [lambda x: x, lambda x: fn(x, s_fn)])


@no_autograph
def augment_patches(patches, config: AugmentConfig, seed) -> tf.Tensor:
  """[N, P, P, 3] float32 in [0, 1] -> same, every patch with its own random draws.

  seed: int32/int64 [2] stateless seed; the same seed gives the same output.
  N may be unknown statically (works inside tf.data map).
  """
  x = check_images(patches, "augment_patches")
  seeds = split_seed(seed, 8)
  c = config
  if c.randaugment and c.randaugment_num_ops > 0:  # supp. A step 1
    x = rand_augment(x, seeds[0], c.randaugment_num_ops, c.randaugment_magnitude)
  if c.elastic_p > 0:  # supp. A step 2: elastic deformation and shearing
    x = _with_probability(x, seeds[1], c.elastic_p, lambda y, s: elastic.elastic_shear(
        y, s, sigma=c.elastic_sigma, grid=c.elastic_grid, max_shear=c.elastic_shear))
  if c.histogram_p > 0:  # supp. A step 2: colour histogram
    x = _with_probability(x, seeds[2], c.histogram_p, lambda y, s: color.histogram(
        y, s, knots=c.histogram_knots, strength=c.histogram_strength))
  if c.inception_color_p > 0:  # supp. A step 3
    x = color.inception_color(
        x, seeds[3], p=c.inception_color_p, brightness=c.color_brightness,
        saturation=c.color_saturation, hue=c.color_hue, contrast=c.color_contrast)
  if c.grayscale_p > 0:  # supp. A step 4
    x = color.grayscale(x, seeds[4], p=c.grayscale_p)
  if c.color_drop_p > 0:  # arXiv v1 4.1
    x = color.color_drop(x, seeds[5], p=c.color_drop_p)
  if c.flip_p > 0:  # arXiv v1 4.1
    x = v1.flip(x, seeds[6], p=c.flip_p)
  if c.jitter_size > 0:  # arXiv v1 4.1: e.g. 56 px crop padded back to 64
    x = v1.jitter(x, seeds[7], c.jitter_size)
  return x


@no_autograph
def augment_image(image, config: AugmentConfig, seed) -> tf.Tensor:
  """[H, W, 3] -> [H, W, 3]: the steps of `augment_patches` on a whole image.

  Efficient classification (supp. C) applies steps 1-4 per image after the
  Inception crop; ranges given as fractions of the side scale with H and W.
  """
  image = check_images(image, "augment_image", ranks=(3,))
  return augment_patches(image[None], config, seed)[0]
