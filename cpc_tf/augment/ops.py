"""The AutoAugment / RandAugment operation set, batched with per-patch parameters.

Glossary: N patches, H/W height / width (H = W = P for patches), C = 3 channels.
Every op maps float32 [N, H, W, 3] in [0, 1] to the same, and takes per-patch
parameters of shape [N], so one call serves patches with different draws.

Magnitude m = M / 10 for RandAugment's level M in [0, 10]. The range at m = 1 is
AutoAugment's search range (Cubuk et al. 2018, supp. table), and strength grows
with m for every op, as in the RandAugment paper (Cubuk et al. 2019):

  op            parameter at magnitude m         range at m = 1
  identity      -
  autocontrast  -                                 (PIL ImageOps.autocontrast)
  equalize      -                                 (PIL ImageOps.equalize)
  rotate        +-30 m degrees                    [-30, 30] deg
  solarize      invert pixels >= 1 - m            threshold [0, 256] / 256
  color         factor 1 +- 0.9 m                 [0.1, 1.9]
  posterize     keep 8 - round(4 m) bits          [4, 8] bits
  contrast      factor 1 +- 0.9 m                 [0.1, 1.9]
  brightness    factor 1 +- 0.9 m                 [0.1, 1.9]
  sharpness     factor 1 +- 0.9 m                 [0.1, 1.9]
  shear_x/y     +-0.3 m                           [-0.3, 0.3]
  translate_x/y +-0.45 m * side                   150 / 331 px of ImageNet

The sign of each symmetric op is drawn per patch.
"""

from __future__ import annotations

import math

import tensorflow as tf

from cpc_tf.augment import geometry
from cpc_tf.augment.common import blend, luminance, no_autograph, per_patch, switch

OPS = ("identity", "autocontrast", "equalize", "rotate", "solarize", "color",
       "posterize", "contrast", "brightness", "sharpness", "shear_x", "shear_y",
       "translate_x", "translate_y")
GEOMETRIC = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")

MAX_ROTATE_DEGREES = 30.0
MAX_SHEAR = 0.3
MAX_TRANSLATE = 150.0 / 331.0  # fraction of the side; AutoAugment's ImageNet range
MAX_ENHANCE = 0.9
MAX_POSTERIZE_DROP = 4.0  # bits removed at m = 1


def identity(images: tf.Tensor) -> tf.Tensor:
  """RandAugment's no-op: a patch that draws it keeps one op only."""
  return images


def autocontrast(images: tf.Tensor) -> tf.Tensor:
  """Stretches each channel of each patch to span [0, 1]; flat channels unchanged."""
  lo = tf.reduce_min(images, axis=[1, 2], keepdims=True)
  hi = tf.reduce_max(images, axis=[1, 2], keepdims=True)
  flat = hi <= lo
  scale = tf.where(flat, 1.0, 1.0 / tf.where(flat, 1.0, hi - lo))
  return tf.clip_by_value((images - tf.where(flat, 0.0, lo)) * scale, 0.0, 1.0)


def equalize(images: tf.Tensor) -> tf.Tensor:
  """PIL ImageOps.equalize per channel of each patch, on 8-bit levels."""
  shape = tf.shape(images)
  n, h, w = shape[0], shape[1], shape[2]
  levels = tf.cast(tf.round(images * 255.0), tf.int32)
  rows = tf.reshape(tf.transpose(levels, [0, 3, 1, 2]), [n * 3, h * w])  # [N*3, H*W]
  hist = tf.math.bincount(rows, minlength=256, maxlength=256, axis=-1)  # [N*3, 256]
  # PIL: step = (pixels - count of the last non-empty level) // 255; the lut of
  # level i is (step // 2 + pixels below i) // step; step 0 means identity.
  last = tf.reduce_max(tf.where(hist > 0, tf.range(256), 0), axis=1)
  last_count = tf.gather(hist, last, batch_dims=1)
  step = (h * w - last_count) // 255
  below = tf.cumsum(hist, axis=1, exclusive=True)
  safe_step = tf.maximum(step, 1)[:, None]
  lut = tf.minimum((safe_step // 2 + below) // safe_step, 255)
  mapped = tf.gather(lut, rows, batch_dims=1)
  out_rows = tf.where((step > 0)[:, None], mapped, rows)
  out = tf.transpose(tf.reshape(out_rows, [n, 3, h, w]), [0, 2, 3, 1])
  out = tf.cast(out, tf.float32) / 255.0
  out.set_shape(images.shape)
  return out


def solarize(images: tf.Tensor, threshold: tf.Tensor) -> tf.Tensor:
  """Inverts pixels at or above threshold [N] (PIL ImageOps.solarize)."""
  flip = tf.cast(images >= per_patch(threshold), images.dtype)
  return images + flip * (1.0 - 2.0 * images)  # x or 1 - x; cheaper than tf.where


def posterize(images: tf.Tensor, bits: tf.Tensor) -> tf.Tensor:
  """Keeps the top bits [N] (float, 1..8) of each 8-bit level."""
  levels = tf.floor(images * 255.0 + 0.5)
  step = per_patch(tf.pow(2.0, 8.0 - bits))
  return tf.floor(levels / step) * step / 255.0


def color(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """PIL ImageEnhance.Color: blend with the greyscale image."""
  return blend(luminance(images), images, factor)


def contrast(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """PIL ImageEnhance.Contrast: blend with the patch's mean grey level."""
  mean = tf.reduce_mean(luminance(images), axis=[1, 2, 3], keepdims=True)
  return blend(mean, images, factor)


def brightness(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """PIL ImageEnhance.Brightness: blend with black."""
  return blend(tf.zeros_like(images), images, factor)


def sharpness(images: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
  """PIL ImageEnhance.Sharpness: blend with PIL's SMOOTH filter, border kept."""
  kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13.0
  kernel = tf.tile(kernel[:, :, None, None], [1, 1, 3, 1])
  # SAME then masking the border: VALID convolutions mis-shape an empty batch.
  smooth = tf.nn.depthwise_conv2d(images, kernel, [1, 1, 1, 1], "SAME")
  shape = tf.shape(images)
  interior = tf.pad(tf.ones([1, shape[1] - 2, shape[2] - 2, 1]),
                    [[0, 0], [1, 1], [1, 1], [0, 0]])
  degenerate = interior * smooth + (1.0 - interior) * images
  return blend(degenerate, images, factor)


def geometric(images: tf.Tensor, linear: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
  """Rotate / shear / translate as one resampling: linear [N, 2, 2], shift [N, 2]."""
  shape = tf.shape(images)
  transforms = geometry.affine_transforms(linear, shift, shape[1], shape[2])
  out = geometry.transform(images, transforms)
  out.set_shape(images.shape)
  return out


def geometric_params(op: tf.Tensor, value: tf.Tensor, height, width):
  """Per-patch affine parameters of the geometric ops; identity for the others.

  op int32 [N] indices into OPS, value [N] signed op parameter (degrees, shear,
  or translation as a fraction of the side) -> (linear [N, 2, 2], shift [N, 2]).
  """
  def active(name):
    return tf.where(op == OPS.index(name), value, 0.0)

  theta = active("rotate") * (math.pi / 180.0)
  cos, sin = tf.cos(theta), tf.sin(theta)
  # Rows: (y_in, x_in); columns: coefficients of (y, x). At most one op is
  # active per patch, so summing their matrices is exact.
  linear = tf.stack([
      tf.stack([cos, -sin + active("shear_y")], axis=1),
      tf.stack([sin + active("shear_x"), cos], axis=1)], axis=1)
  shift = tf.stack([-active("translate_y") * tf.cast(height, tf.float32),
                    -active("translate_x") * tf.cast(width, tf.float32)], axis=1)
  return linear, shift


def op_values(op: tf.Tensor, magnitude: float, sign: tf.Tensor) -> tf.Tensor:
  """The per-patch parameter of each op at RandAugment level `magnitude` (0-10).

  op int32 [N] indices into OPS, sign [N] of +-1 -> value [N] (see module table).
  """
  m = magnitude / 10.0
  table = {
      "rotate": MAX_ROTATE_DEGREES * m * sign,
      "solarize": tf.fill(tf.shape(sign), 1.0 - m),
      "posterize": tf.fill(tf.shape(sign), 8.0 - round(MAX_POSTERIZE_DROP * m)),
      "shear_x": MAX_SHEAR * m * sign,
      "shear_y": MAX_SHEAR * m * sign,
      "translate_x": MAX_TRANSLATE * m * sign,
      "translate_y": MAX_TRANSLATE * m * sign,
  }
  for name in ("color", "contrast", "brightness", "sharpness"):
    table[name] = 1.0 + MAX_ENHANCE * m * sign
  value = tf.zeros_like(sign)
  for name, v in table.items():
    value = tf.where(op == OPS.index(name), v, value)
  return value


@no_autograph
def apply(images: tf.Tensor, op: tf.Tensor, value: tf.Tensor) -> tf.Tensor:
  """Applies OPS[op[i]] with parameter value[i] to patch i, each op once, batched.

  images [N, H, W, 3]; op int32 [N]; value [N] from `op_values`. Colour ops
  run each on the patches that chose them; all geometric ops share one
  resampling call with per-patch affine maps.
  """
  shape = tf.shape(images)
  linear, shift = geometric_params(op, value, shape[1], shape[2])
  unary = {"identity": identity, "autocontrast": autocontrast, "equalize": equalize}
  with_value = {"solarize": solarize, "posterize": posterize, "color": color,
                "contrast": contrast, "brightness": brightness, "sharpness": sharpness}
  branches = []
  branch = tf.fill(tf.shape(op), len(unary) + len(with_value))  # geometric
  for name, fn in list(unary.items()) + list(with_value.items()):
    branch = tf.where(op == OPS.index(name), len(branches), branch)
    if name in unary:
      branches.append(lambda x, v, lin, s, fn=fn: fn(x))
    else:
      branches.append(lambda x, v, lin, s, fn=fn: fn(x, v))
  branches.append(lambda x, v, lin, s: geometric(x, lin, s))
  return switch(images, branch, branches, value, linear, shift)
