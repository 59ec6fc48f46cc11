"""ChannelLayerNorm equals keras.layers.LayerNormalization(axis=-1): outputs and gradients."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.layer_norm import ChannelLayerNorm


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
  # float32, unit-scale outputs: different reduction orders differ by ~1e-6.
  np.testing.assert_allclose(y1, y0, atol=1e-5)
  for a, b in zip(g0, g1):
    np.testing.assert_allclose(b, a, atol=1e-4 * (float(tf.reduce_max(tf.abs(a))) + 1.0))


def test_same_variables_and_mixed_precision():
  layer = ChannelLayerNorm(epsilon=1e-5, dtype="mixed_bfloat16", name="ln")
  layer.build((None, 8))
  assert [v.path for v in layer.weights] == ["ln/gamma", "ln/beta"]
  y = layer(tf.random.normal([4, 8]))
  assert y.dtype == tf.bfloat16 and layer.gamma.dtype == "float32"


def test_other_forms_are_refused():
  with pytest.raises(ValueError, match="last axis"):
    ChannelLayerNorm(axis=1)
