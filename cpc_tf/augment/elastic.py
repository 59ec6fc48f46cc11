"""supp. A step 2 (geometric half): elastic deformation and shearing, per patch.

Glossary: N patches, H/W height / width (H = W = P for patches), C = 3 channels,
G the side of the control grid of the displacement field.

supp. A names De Fauw et al.'s (2018) primitives without their parameters.
Interpretation: elastic deformation is a smooth random displacement field,
Gaussian noise on a G x G control grid bicubically upsampled to H x W (smooth
like Gaussian-smoothed dense noise, without a large blur kernel); shearing is
an affine shear about the patch centre. Both are composed into one sampling
grid, so each patch is resampled once, bilinearly, with edge replication at
the border. Defaults (`AugmentConfig.elastic_*`): control-point std 3% of the
side on a 4 x 4 grid, shear up to 0.2 on each axis.
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.augment import geometry
from cpc_tf.augment.common import check_images, no_autograph, split_seed


@no_autograph
def elastic_shear(images, seed, sigma: float = 0.03, grid: int = 4,
                  max_shear: float = 0.2) -> tf.Tensor:
  """[N, H, W, 3] -> [N, H, W, 3], each patch with its own field and shear.

  sigma: std of the control-point displacements as a fraction of the side;
  grid: G, control points per side (>= 2; fewer = smoother);
  max_shear: shear along x and along y each uniform in [-max_shear, max_shear].
  """
  images = check_images(images, "elastic_shear")
  shape = tf.shape(images)
  n, h, w = shape[0], shape[1], shape[2]
  size = tf.cast(tf.stack([h, w]), tf.float32)
  field_seed, shear_seed = split_seed(seed, 2)
  control = tf.random.stateless_normal([n, grid, grid, 2], field_seed) * sigma * size
  field = tf.image.resize(control, tf.stack([h, w]), method="bicubic")  # [N, H, W, 2]
  shear = tf.random.stateless_uniform([n, 2], shear_seed, -max_shear, max_shear)
  centre = (size - 1.0) / 2.0
  rel = geometry.pixel_grid(h, w) - centre  # [H, W, 2] as (y, x)
  sy, sx = shear[:, 0, None, None], shear[:, 1, None, None]
  y_in = rel[..., 0] + sy * rel[..., 1]
  x_in = rel[..., 1] + sx * rel[..., 0]
  coords = tf.stack([y_in, x_in], axis=-1) + centre + field
  return geometry.warp(images, coords)
