"""symmetric_pad equals tf.pad(mode="SYMMETRIC"), values and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.padding import symmetric_pad


@pytest.mark.parametrize("shape,before,after", [
    ((3, 8, 8, 5), 1, 1), ((2, 4, 6, 3), 3, 3), ((2, 5, 5, 2), 0, 2), ((2, 5, 5, 2), 2, 0),
    ((2, 2, 2, 4), 1, 1), ((2, 1, 3, 2), 1, 1),
    # Above 64 pixels the gradient folds by slices instead of one matmul.
    ((2, 12, 10, 3), 1, 1), ((1, 9, 9, 2), 2, 1)])
def test_same_values_and_gradients_as_tf_pad(shape, before, after):
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=shape), tf.float32)
  padded = [d + before + after if i in (1, 2) else d for i, d in enumerate(shape)]
  w = tf.constant(rng.normal(size=padded), tf.float32)
  paddings = [[0, 0], [before, after], [before, after], [0, 0]]

  def run(fn):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = fn(x)
      loss = tf.reduce_sum(y * w)
    return y, tape.gradient(loss, x)

  y0, g0 = run(lambda t: tf.pad(t, paddings, mode="SYMMETRIC"))
  y1, g1 = run(lambda t: symmetric_pad(t, before, after))
  np.testing.assert_array_equal(y1, y0)
  # Each input gets the same few float32 terms, possibly summed in another order.
  np.testing.assert_allclose(g1, g0, atol=1e-6 * float(tf.reduce_max(tf.abs(g0))))


def test_inside_a_function_with_unknown_map_size():
  f = tf.function(lambda x: tf.gradients(tf.reduce_sum(symmetric_pad(x, 1, 1) ** 2), x)[0],
                  input_signature=[tf.TensorSpec([None, None, None, 2])])
  x = tf.random.normal([2, 3, 4, 2])
  with tf.GradientTape() as tape:
    tape.watch(x)
    loss = tf.reduce_sum(tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC") ** 2)
  np.testing.assert_allclose(f(x), tape.gradient(loss, x), rtol=1e-6)
