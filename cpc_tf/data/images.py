"""Image bytes / arrays -> float32 RGB in [0, 1], whatever the file stored.

Glossary: H, W image height / width, C channels as stored (1 grey, 2 grey+alpha,
3 RGB, 4 RGBA). Every image leaves this module as [H, W, 3] float32 in [0, 1].

Handled formats (checked against PIL in tests):
  grey (C=1) and grey+alpha (C=2): the grey channel is tiled to 3 channels;
  RGBA (C=4): alpha is dropped (no compositing: the colour channels are kept);
  16-bit PNG: scaled by 1/65535, not clipped by 1/255;
  CMYK JPEG: TensorFlow's libjpeg decoder converts Adobe (inverted) CMYK to RGB
    itself, which is what Photoshop and PIL write, so no PIL fallback is needed;
  BMP (image files only, `decode_file`): PIL decodes it, because TensorFlow's BMP
    decoder returns 8-bit palette indices as grey levels and rejects 1-bit files;
    TFDS stores images re-encoded as PNG / JPEG, so `decode` never meets a BMP.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf
from PIL import Image


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


def pil_rgb(data: bytes) -> np.ndarray:
  """Encoded bytes of any format PIL reads -> [H, W, 3] uint8, palette and 1-bit expanded."""
  with Image.open(io.BytesIO(data)) as image:
    return np.asarray(image.convert("RGB"))


def decode_file(data: bytes) -> tf.Tensor:
  """Eager decode of one image file's bytes -> [H, W, C] float32 in [0, 1], C in 1..4.

  `to_rgb` of the result equals `decode(data)`, except that BMP goes through
  PIL (module doc). Runs outside a graph (inside `tf.py_function`), so a file
  that fails raises here, where the caller can name it, instead of inside a
  tf.data kernel; the caller applies `to_rgb` in its graph (fewer eager ops).
  """
  if data[:2] == b"BM":
    return tf.constant(pil_rgb(data).astype(np.float32) / 255.0)
  return tf.io.decode_image(data, expand_animations=False, dtype=tf.float32)
