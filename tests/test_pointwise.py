"""PointwiseConv2D equals keras.layers.Conv2D with a 1x1 kernel: values, gradients, variables."""

import numpy as np
import pytest
import tensorflow as tf
import keras

from cpc_tf.pointwise import PointwiseConv2D, pointwise_conv, subsample
from tolerances import assert_close_f32


@pytest.mark.parametrize("shape,stride", [
    ((3, 8, 8, 5), 1), ((3, 8, 8, 5), 2), ((2, 4, 4, 6), 2), ((2, 7, 5, 3), 2),
    ((2, 1, 1, 4), 2), ((2, 9, 6, 2), 3)])
def test_same_values_and_gradients_as_a_strided_conv(shape, stride):
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=shape), tf.float32)
  kernel = tf.constant(rng.normal(size=(1, 1, shape[-1], 4)), tf.float32)

  def run(fn):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      y = fn(x, kernel)
      loss = tf.reduce_sum(0.5 * y * y + y)
    return [y, *tape.gradient(loss, [x, kernel])]

  want = run(lambda t, k: tf.nn.conv2d(t, k, stride, "VALID"))
  got = run(lambda t, k: pointwise_conv(t, k, stride))
  assert got[0].shape == want[0].shape
  n = shape[0] * shape[1] * shape[2]
  for g, w, reduction in zip(got, want, (shape[-1], 4 * shape[-1], n)):
    assert_close_f32(g, w, reduction=reduction, depth=2)
  # Rows and columns the stride skips get no gradient at all.
  skipped = np.ones(shape[1:3], bool)
  skipped[::stride, ::stride] = False
  np.testing.assert_array_equal(got[1].numpy()[:, skipped], 0.0)


def test_subsample_keeps_every_strided_row_and_column():
  x = tf.reshape(tf.range(2 * 7 * 5 * 3), [2, 7, 5, 3])
  np.testing.assert_array_equal(subsample(x, 2), x[:, ::2, ::2, :])
  np.testing.assert_array_equal(subsample(x, 1), x)


def test_unknown_map_size_inside_a_function():
  f = tf.function(lambda t, k: pointwise_conv(t, k, 2),
                  input_signature=[tf.TensorSpec([None, None, None, 3]),
                                   tf.TensorSpec([1, 1, 3, 2])])
  x, k = tf.random.normal([2, 5, 6, 3]), tf.random.normal([1, 1, 3, 2])
  assert_close_f32(f(x, k), tf.nn.conv2d(x, k, 2, "VALID"), reduction=3)


def test_layer_has_conv2d_variables_and_outputs():
  x = tf.random.normal([2, 6, 6, 8], seed=1)
  conv = keras.layers.Conv2D(5, 1, strides=2, name="c")
  point = PointwiseConv2D(5, strides=2, name="c")
  conv.build(x.shape), point.build(x.shape)
  assert [(v.path, v.shape) for v in point.weights] == [(v.path, v.shape) for v in conv.weights]
  point.set_weights([w + 1.0 for w in conv.get_weights()])  # a bias that is not zero
  conv.set_weights(point.get_weights())
  assert_close_f32(point(x), conv(x), reduction=8)
  # Serialisable as the exported encoder.keras needs.
  clone = keras.layers.deserialize(keras.layers.serialize(point))
  assert isinstance(clone, PointwiseConv2D) and clone.strides == (2, 2)


def test_mixed_precision_policy():
  point = PointwiseConv2D(4, dtype="mixed_bfloat16")
  y = point(tf.random.normal([2, 4, 4, 3]))
  assert y.dtype == tf.bfloat16 and point.kernel.dtype == tf.float32


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3), dict(strides=(1, 2)), dict(padding="same"),
    dict(dilation_rate=2), dict(data_format="channels_first")])
def test_refuses_other_forms(kwargs):
  with pytest.raises(ValueError, match="keras.layers.Conv2D for other forms"):
    PointwiseConv2D(4, **kwargs)
