"""Image bytes / arrays -> float32 RGB in [0, 1], whatever the file stored.

Glossary: H, W image height / width, C channels as stored (1 grey, 2 grey+alpha,
3 RGB, 4 RGBA). Every image leaves this module as [H, W, 3] float32 in [0, 1].

Handled formats (checked against PIL in tests):
  grey (C=1) and grey+alpha (C=2): the grey channel is tiled to 3 channels;
  RGBA (C=4): alpha is dropped (no compositing: the colour channels are kept);
  16-bit PNG: scaled by 1/65535, not clipped by 1/255;
  CMYK JPEG: TensorFlow's libjpeg decoder converts Adobe (inverted) CMYK to RGB
    itself, which is what Photoshop and PIL write, so no PIL fallback is needed.
"""

from __future__ import annotations

import tensorflow as tf


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """[H, W, C] (C in 1..4, any int or float dtype) -> [H, W, 3] float32 in [0, 1]."""
  image = tf.image.convert_image_dtype(image, tf.float32)  # uint16 / 65535, uint8 / 255
  if image.shape.rank == 2:
    image = image[..., None]
  channels = tf.shape(image)[-1]
  # Grey (+ alpha) keeps its first channel; RGB(A) keeps the first three.
  image = tf.cond(channels < 3,
                  lambda: tf.tile(image[..., :1], [1, 1, 3]),
                  lambda: image[..., :3])
  image.set_shape([None, None, 3])
  return image


def decode(data: tf.Tensor) -> tf.Tensor:
  """Encoded JPEG / PNG / BMP / GIF bytes (scalar string) -> [H, W, 3] float32.

  Animated GIFs keep their first frame (`expand_animations=False`).
  """
  image = tf.io.decode_image(data, expand_animations=False, dtype=tf.float32)
  return to_rgb(image)
