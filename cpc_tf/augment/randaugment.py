"""supp. A step 1: two random AutoAugment operations, drawn for every patch on its own.

Glossary: N patches, H/W height / width (H = W = P for patches), C = 3 channels.

Keras 3's RandAugment layer draws its ops once per call for the whole batch;
CPC v2 draws them per patch, so that the patches of one image differ. Here each
of the `num_ops` rounds draws an op index and a sign per patch and applies all
patches' choices in one batched pass (`ops.apply`).
"""

from __future__ import annotations

import tensorflow as tf

from cpc_tf.augment import ops
from cpc_tf.augment.common import check_images, no_autograph, random_sign, split_seed


@no_autograph
def rand_augment(images, seed, num_ops: int = 2, magnitude: float = 9.0) -> tf.Tensor:
  """[N, H, W, 3] -> [N, H, W, 3]: `num_ops` ops per patch, uniformly from ops.OPS.

  magnitude is RandAugment's level M in [0, 10] (see the table in ops.py).
  Patches may draw the same op twice, as in RandAugment.
  """
  images = check_images(images, "rand_augment")
  n = tf.shape(images)[0]
  for round_seed in split_seed(seed, num_ops):
    op_seed, sign_seed = split_seed(round_seed, 2)
    op = tf.random.stateless_uniform([n], op_seed, minval=0, maxval=len(ops.OPS),
                                     dtype=tf.int32)
    value = ops.op_values(op, magnitude, random_sign(sign_seed, n))
    images = ops.apply(images, op, value)
  return images
