"""ChannelLayerNorm equals keras.layers.LayerNormalization(axis=-1): outputs and gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.layer_norm import ChannelLayerNorm
from tolerances import assert_close_f32


@pytest.mark.parametrize("shape", [(5, 4, 4, 16), (3, 2, 2, 256), (7, 33)])
def test_same_outputs_and_gradients_as_keras(shape):
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(3.0, 2.0, size=shape), tf.float32)
  upstream = tf.constant(rng.normal(size=shape), tf.float32)
  ours = ChannelLayerNorm(epsilon=1e-5)
  theirs = keras.layers.LayerNormalization(axis=-1, epsilon=1e-5)
  ours.build(shape)
  theirs.build(shape)
  weights = [rng.normal(1.0, 0.5, size=shape[-1]), rng.normal(size=shape[-1])]
  for layer in (ours, theirs):  # non-trivial gamma and beta
    layer.set_weights(weights)

  def run(layer):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(layer(x) * upstream)
    return layer(x), tape.gradient(loss, [x, *layer.trainable_variables])

  y0, g0 = run(theirs)
  y1, g1 = run(ours)
  # Two implementations, two reduction orders: float32 rounding of sums over C channels
  # (mean, variance, normalise); gradients add as many steps and sum gamma's and beta's
  # over the B * H * W positions.
  channels, positions = shape[-1], int(np.prod(shape[:-1]))
  assert_close_f32(y1, y0, reduction=channels, depth=3)
  for a, b in zip(g0, g1):
    assert_close_f32(b, a, reduction=max(channels, positions), depth=6)


def test_same_variables_and_mixed_precision():
  layer = ChannelLayerNorm(epsilon=1e-5, dtype="mixed_bfloat16", name="ln")
  layer.build((None, 8))
  assert [v.path for v in layer.weights] == ["ln/gamma", "ln/beta"]
  y = layer(tf.random.normal([4, 8]))
  assert y.dtype == tf.bfloat16 and layer.gamma.dtype == "float32"


def test_other_forms_are_refused():
  with pytest.raises(ValueError, match="last axis"):
    ChannelLayerNorm(axis=1)
