"""Per-patch resampling: one batched affine transform, and a dense displacement warp.

Glossary: N patches, H/W height / width (H = W = P for patches), C channels.
Coordinates are in pixel-index units (pixel (i, j) sits at y = i, x = j), the
convention of `tf.raw_ops.ImageProjectiveTransformV3`.

Each patch gets its own 2x2 linear map L and shift t, applied about the patch
centre c: the output pixel at p samples the input at L (p - c) + c + t. Rotate,
shear and translate of RandAugment are all such maps, so every geometric op of
a batch runs as ONE resampling call with per-patch parameters.
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.augment.common import FILL_VALUE


def affine_transforms(linear: tf.Tensor, shift: tf.Tensor, height, width) -> tf.Tensor:
  """[N, 2, 2] linear maps (rows y, x) and [N, 2] shifts (dy, dx) -> [N, 8] transforms.

  The result maps output to input coordinates, as ImageProjectiveTransformV3 wants.
  """
  cy = (tf.cast(height, tf.float32) - 1.0) / 2.0
  cx = (tf.cast(width, tf.float32) - 1.0) / 2.0
  lyy, lyx = linear[:, 0, 0], linear[:, 0, 1]
  lxy, lxx = linear[:, 1, 0], linear[:, 1, 1]
  # input = L (p - c) + c + t, written as x_in = a0 x + a1 y + a2, y_in = b0 x + b1 y + b2.
  a2 = cx - lxx * cx - lxy * cy + shift[:, 1]
  b2 = cy - lyx * cx - lyy * cy + shift[:, 0]
  zeros = tf.zeros_like(a2)
  return tf.stack([lxx, lxy, a2, lyx, lyy, b2, zeros, zeros], axis=1)


def transform(images: tf.Tensor, transforms: tf.Tensor, interpolation: str = "BILINEAR",
              fill_value: float = FILL_VALUE, output_shape=None) -> tf.Tensor:
  """Resamples images [N, H, W, C] with per-image transforms [N, 8] (output -> input)."""
  if output_shape is None:
    output_shape = tf.shape(images)[1:3]
  out = tf.raw_ops.ImageProjectiveTransformV3(
      images=images, transforms=tf.cast(transforms, tf.float32),
      output_shape=tf.cast(output_shape, tf.int32),
      fill_value=tf.constant(fill_value, tf.float32), interpolation=interpolation,
      fill_mode="CONSTANT")
  return out


def warp(images: tf.Tensor, coords: tf.Tensor) -> tf.Tensor:
  """Bilinear sampling: out[n, i, j] = images[n] at coords[n, i, j] = (y, x).

  images [N, H, W, C]; coords [N, H, W, 2] in pixel-index units. Coordinates
  outside the image are clamped to the border (edge replication), so a warp
  never brings in a constant frame.
  """
  shape = tf.shape(images)
  n, h, w = shape[0], shape[1], shape[2]
  y = tf.clip_by_value(coords[..., 0], 0.0, tf.cast(h - 1, tf.float32))
  x = tf.clip_by_value(coords[..., 1], 0.0, tf.cast(w - 1, tf.float32))
  y0f, x0f = tf.floor(y), tf.floor(x)
  wy, wx = (y - y0f)[..., None], (x - x0f)[..., None]
  y0, x0 = tf.cast(y0f, tf.int32), tf.cast(x0f, tf.int32)
  y1, x1 = tf.minimum(y0 + 1, h - 1), tf.minimum(x0 + 1, w - 1)
  # Flat gathers from [N*H*W, C]: faster than gather_nd with 3-part indices.
  flat = tf.reshape(images, [-1, shape[3]])
  base = (tf.range(n) * h * w)[:, None, None]

  def at(yi, xi):
    return tf.gather(flat, base + yi * w + xi)

  top = at(y0, x0) * (1.0 - wx) + at(y0, x1) * wx
  bottom = at(y1, x0) * (1.0 - wx) + at(y1, x1) * wx
  out = top * (1.0 - wy) + bottom * wy
  out.set_shape(images.shape)
  return out


def pixel_grid(height, width) -> tf.Tensor:
  """[H, W, 2] float32 of (y, x) pixel-index coordinates."""
  ys = tf.range(tf.cast(height, tf.float32))
  xs = tf.range(tf.cast(width, tf.float32))
  yy, xx = tf.meshgrid(ys, xs, indexing="ij")
  return tf.stack([yy, xx], axis=-1)
