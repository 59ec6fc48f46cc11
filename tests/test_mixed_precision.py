"""Pre-training under the mixed policies: float32 loss and weights, finite, resumable.

mixed_bfloat16 (this CPU has AVX512_BF16; TPU's policy) and mixed_float16
(with dynamic loss scaling, `optimization.make_optimizer`) each run a few
steps of the tiny config and resume from their checkpoint.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import configs, optimization, train


@pytest.fixture(autouse=True)
def restore_float32_policy():
  yield
  keras.mixed_precision.set_dtype_policy("float32")  # pretrain sets it globally


def _config(precision, steps):
  base = configs.replace(configs.tiny(), **{"model.head.directions": ("down", "right")})
  return configs.replace(base, precision=precision, train_steps=steps, checkpoint_every=2)


def _dataset_fn(config):
  g = config.model.grid

  def fn(ctx, seed):
    b = ctx.get_per_replica_batch_size(config.batch_size)
    shape = [b, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3]
    return tf.data.Dataset.range(10**6).map(
        lambda i: tf.random.stateless_uniform(shape, seed=[seed, i]))
  return fn


@pytest.mark.parametrize("precision,compute", [
    ("mixed_bfloat16", "bfloat16"),
    # One precision in the default suite (CI time); both under -m slow.
    pytest.param("mixed_float16", "float16", marks=pytest.mark.slow),
])
def test_mixed_precision_trains_in_float32_and_resumes(tmp_path, precision, compute):
  config = _config(precision, 2)
  result = train.pretrain(config, str(tmp_path), dataset_fn=_dataset_fn(config),
                          verbose=False)
  assert result.step == 2 and all(np.isfinite(v) for v in result.metrics.values())
  model = result.trainer.model
  # The convolutions really run in the low precision...
  assert model.encoder.get_layer("stem_conv").compute_dtype == compute
  # ...while the weights, the loss and the metrics stay float32.
  assert {v.dtype for v in model.trainable_variables} == {"float32"}
  g = config.model.grid
  out = model(tf.random.uniform([2, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3]),
              training=True)
  assert {v.dtype for v in out.values()} == {tf.float32}
  # float16 needs loss scaling (its range underflows); bfloat16 has float32's range.
  assert optimization.loss_scale(precision) == (
      optimization.LOSS_SCALE if compute == "float16" else 1.0)
  weights = [v.numpy() for v in model.trainable_variables]

  resumed = train.pretrain(_config(precision, 4), str(tmp_path),
                           dataset_fn=_dataset_fn(config), verbose=False)
  assert resumed.step == 4 and np.isfinite(resumed.metrics["loss"])
  assert int(resumed.trainer.optimizer.iterations) == 4
  # The resumed run started from the checkpoint: its weights moved on from step 2's.
  moved = [v.numpy() for v in resumed.trainer.model.trainable_variables]
  assert len(moved) == len(weights) and any(
      not np.array_equal(a, b) for a, b in zip(weights, moved))
