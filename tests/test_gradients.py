"""The explicit gradient path: replica sum, global-norm clip, one application."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import gradients
from test_train import run_subprocess


def numpy_sum_and_clip(replica_grads, clip_norm):
  summed = [np.sum(per_var, axis=0) for per_var in zip(*replica_grads)]
  norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in summed))
  factor = min(1.0, clip_norm / norm)
  return [g * factor for g in summed], norm


def test_one_replica_clip_equals_numpy_and_none_is_kept():
  rng = np.random.default_rng(0)
  grads = [rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=4).astype(np.float32)]
  want, want_norm = numpy_sum_and_clip([grads], 0.5)
  got, norm = gradients.sum_and_clip([tf.constant(grads[0]), None, tf.constant(grads[1])],
                                     0.5)
  assert got[1] is None
  assert float(norm) == pytest.approx(want_norm, rel=1e-6)
  for a, b in zip([got[0], got[2]], want):
    np.testing.assert_allclose(a.numpy(), b, rtol=1e-6)
  unclipped, norm = gradients.sum_and_clip([tf.constant(grads[0])], None)
  np.testing.assert_array_equal(unclipped[0].numpy(), grads[0])


def test_apply_updates_like_adam_on_the_clipped_gradient():
  var = keras.Variable(np.zeros(4, np.float32))
  opt = keras.optimizers.Adam(learning_rate=1.0, epsilon=1.0)
  opt.build([var])
  grads, norm = gradients.sum_and_clip([tf.constant([3.0, 4.0, 0.0, 0.0])], 1.0)
  gradients.apply(opt, grads, [var])
  assert float(norm) == pytest.approx(5.0)
  reference = keras.Variable(np.zeros(4, np.float32))
  keras.optimizers.Adam(learning_rate=1.0, epsilon=1.0).apply(
      [tf.constant([0.6, 0.8, 0.0, 0.0])], [reference])
  np.testing.assert_allclose(var.numpy(), reference.numpy(), rtol=1e-6)
  assert np.abs(var.numpy()).max() > 0


def test_two_replicas_sum_clip_and_apply_once_like_numpy():
  """2 logical CPUs: each replica's gradient differs; the sum is clipped and applied once."""
  out = run_subprocess("""
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cpc_tf import gradients
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    per_replica = np.array([[3.0, 0.0, 1.0], [1.0, 4.0, -1.0]], np.float32)
    with strategy.scope():
      var = tf.Variable(np.zeros(3, np.float32))
      opt = keras.optimizers.SGD(learning_rate=1.0)
      opt.build([var])

    @tf.function
    def step():
      def replica():
        r = tf.distribute.get_replica_context().replica_id_in_sync_group
        grads, norm = gradients.sum_and_clip([tf.gather(per_replica, r)], 2.0)
        gradients.apply(opt, grads, [var])
        return grads[0], norm
      return strategy.run(replica)

    grads, norm = step()
    summed = per_replica.sum(0)  # [4, 4, 0], norm 4 sqrt(2)
    want = summed * 2.0 / np.linalg.norm(summed)
    for g in strategy.experimental_local_results(grads):
      np.testing.assert_allclose(g, want, rtol=1e-6)
    for n in strategy.experimental_local_results(norm):
      np.testing.assert_allclose(n, np.linalg.norm(summed), rtol=1e-6)
    # SGD at rate 1: the weights moved by exactly one clipped sum, not two.
    np.testing.assert_allclose(var.numpy(), -want, rtol=1e-6)
    print("OK")
  """)
  assert "OK" in out
