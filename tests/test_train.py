"""The pre-training loop: distribution equivalence, checkpoints, resume, failure modes."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import checkpoints, configs, optimization, stop, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def small_config(**changes):
  """tiny() with one direction: the fastest config to trace."""
  base = configs.replace(configs.tiny(), **{"model.head.directions": ("down",)})
  return configs.replace(base, **changes)


def synthetic_fn(config, nan_from_step=None):
  """dataset_fn of random patches; batches from `nan_from_step` (1-based) are NaN."""
  g = config.model.grid

  def fn(ctx, seed):
    b = ctx.get_per_replica_batch_size(config.batch_size)
    shape = [b, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3]

    def batch(i):
      x = tf.random.stateless_uniform(shape, seed=[seed, i])
      if nan_from_step is None:
        return x
      return tf.where(i + 1 >= nan_from_step, x * np.nan, x)
    return tf.data.Dataset.range(10**6).map(batch)
  return fn


def run_subprocess(script: str, timeout: int = 600, env=None):
  full_env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT, **(env or {}))
  proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], cwd=ROOT,
                        env=full_env, capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout


def test_pretrain_writes_checkpoints_config_summaries_and_resumes(tmp_path):
  config = small_config()
  model_dir = str(tmp_path)
  result = train.pretrain(config, model_dir, dataset_fn=synthetic_fn(config),
                          verbose=False)
  assert result.step == 4
  assert np.isfinite(result.metrics["loss"])
  assert checkpoints.read_config(model_dir) == config
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-4")
  assert os.path.exists(os.path.join(model_dir, "ckpt-2.index"))  # checkpoint_every=2
  tags = set()
  for name in tf.io.gfile.glob(os.path.join(model_dir, "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(name):
      tags |= {v.tag for v in event.summary.value}
  assert {"loss", "loss/down", "accuracy/down", "learning_rate", "gradient_norm",
          "throughput/images_per_second", "throughput/patches_per_second"} <= tags

  # A longer schedule in the same model_dir continues from step 4.
  longer = configs.replace(config, train_steps=6)
  result = train.pretrain(longer, model_dir, dataset_fn=synthetic_fn(config),
                          verbose=False)
  assert result.step == 6
  assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-6")
  reader = tf.train.load_checkpoint(model_dir)
  assert reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE") == 6
  # Every averaged weight is saved, the head's under its layer names. (The raw
  # model's variables sit under the optimizer's references to them: TF saves a
  # variable once, at its shortest path.)
  saved = [k for k in reader.get_variable_to_shape_map() if k.startswith("averaged_model/")]
  assert len(saved) == len(result.trainer.averaged_model.weights)
  assert any(k.startswith("averaged_model/head/down/context/block0_up/") for k in saved)

  # The averaged weights load by themselves and differ from the raw weights.
  loaded_config, averaged = checkpoints.load_averaged_model(model_dir)
  assert loaded_config == longer
  for got, want in zip(averaged.get_weights(), result.trainer.averaged_model.get_weights()):
    np.testing.assert_array_equal(got, want)
  assert any(not np.allclose(a, w) for a, w in zip(
      averaged.get_weights(), result.trainer.model.get_weights()))


def test_the_probe_logs_knn_top1_on_its_schedule_and_in_the_progress_line(tmp_path, capsys):
  # Synthetic patches to pre-train on; the probe reads labelled Fashion-MNIST
  # (config.data) on steps 2 and 4 (every_steps=2, train_steps=4).
  config = small_config(probe=configs.ProbeConfig(every_steps=2, k=3, memory_size=20,
                                                  query_size=10, batch_size=16))
  result = train.pretrain(config, str(tmp_path), dataset_fn=synthetic_fn(config))
  assert result.step == 4
  logged = {}
  for name in tf.io.gfile.glob(os.path.join(str(tmp_path), "events.out.tfevents.*")):
    for event in tf.compat.v1.train.summary_iterator(name):
      for v in event.summary.value:
        if v.tag == "probe/knn_top1":
          logged[event.step] = float(tf.make_ndarray(v.tensor))
  assert sorted(logged) == [2, 4] and all(0.0 <= t <= 1.0 for t in logged.values())
  out = capsys.readouterr().out
  shown = f"{logged[4]:.4f}" if logged[4] > 1e-3 else f"{logged[4]:.4e}"  # as Progbar
  assert f"knn_top1: {shown}" in out  # the progress line
  assert "Probe: 2 kNN probe(s) took" in out and "% of the" in out  # the cost share
  # The step is the bar's own integer counter, not also a float metric (issue 21).
  assert "4/4" in out and "step: " not in out


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  config = small_config(train_steps=6)
  with pytest.raises(stop.NonFiniteLossError, match="at step 3") as error:
    train.pretrain(config, str(tmp_path), dataset_fn=synthetic_fn(config, nan_from_step=3),
                   verbose=False)
  assert "ckpt-2" in str(error.value)
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-2")
  reader = tf.train.load_checkpoint(str(tmp_path))
  weights = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
             if reader.get_variable_to_dtype_map()[k].is_floating]
  assert weights and all(np.all(np.isfinite(w)) for w in weights)


def test_check_config_refuses_batch_not_divisible_by_replicas():
  with pytest.raises(ValueError, match="multiple of the 3 replicas"):
    train.check_config(small_config(batch_size=4), num_replicas=3)
  train.check_config(small_config(batch_size=6), num_replicas=3)


def test_total_steps_from_epochs():
  assert train.total_steps(small_config(train_steps=0, epochs=2.0, batch_size=4), 10) == 5
  assert train.total_steps(small_config(train_steps=7), None) == 7




def test_learning_rate_schedule():
  sched = optimization.WarmupCosine(1.0, warmup_steps=10, decay="cosine", total_steps=110)
  assert float(sched(0)) == pytest.approx(0.1)
  assert float(sched(9)) == pytest.approx(1.0)
  assert float(sched(60)) == pytest.approx(0.5)
  assert float(sched(110)) == pytest.approx(0.0, abs=1e-6)
  assert optimization.learning_rate(configs.OptimizerConfig(), 100) == 4e-4


@pytest.mark.slow  # 30 s here: kept out of the 15-minute default suite
def test_mirrored_step_equals_single_device_on_the_global_batch():
  """2 logical CPUs: loss, summed gradients and the updated weights match one device."""
  out = run_subprocess("""
    import sys
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from cpc_tf import configs, train
    sys.path.insert(0, "tests")
    from tolerances import assert_close_f32, f32_atol, network_terms
    # epsilon=1 turns Adam's first step into ~lr * g: weights then reveal a
    # doubled or per-replica-clipped gradient instead of hiding it behind g/|g|.
    config = configs.replace(configs.tiny(), **{"optimizer.epsilon": 1.0,
                                                "optimizer.clip_norm": 0.1,
                                                "model.head.directions": ("down", "left")})
    g = config.model.grid
    batch = tf.random.stateless_uniform(
        [4, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3], seed=[1, 2])

    def dataset_fn(ctx):
      # One pipeline feeds both local replicas in turn: element r goes to replica r.
      b = ctx.get_per_replica_batch_size(4)
      return tf.data.Dataset.from_tensor_slices(
          tf.reshape(batch, [4 // b, b, *batch.shape[1:]])).repeat()

    single = train.Trainer(config, tf.distribute.get_strategy(), 1)
    mirrored_strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    mirrored = train.Trainer(config, mirrored_strategy, 1)
    mirrored.model.set_weights(single.model.get_weights())
    mirrored.average.reset()

    out1, grads1 = single.loop.replica_gradients(batch)

    @tf.function
    def replica_grads(x):
      out, grads = mirrored.loop.replica_gradients(x)
      ctx = tf.distribute.get_replica_context()
      return ctx.all_reduce("MEAN", out["loss"]), ctx.all_reduce("SUM", grads)
    shards = mirrored_strategy.experimental_distribute_values_from_function(
        lambda ctx: batch[ctx.replica_id_in_sync_group * 2:(ctx.replica_id_in_sync_group + 1) * 2])
    loss2, grads2 = mirrored_strategy.run(replica_grads, args=(shards,))
    loss2 = mirrored_strategy.experimental_local_results(loss2)[0]
    grads2 = [mirrored_strategy.experimental_local_results(g)[0] for g in grads2]
    np.testing.assert_allclose(loss2, out1["loss"], rtol=1e-5)
    # Two replicas sum their halves of the batch in another order: float32 rounding of
    # sums over the B * Gh * Gw * P * P positions, through the forward and backward pass.
    reduction, depth = network_terms(single.model)
    reduction = max(reduction, int(np.prod(batch.shape[:5])))
    # Some gradients are zero in exact arithmetic (float32 noise of ~1e-9): the scale of
    # their terms is the model's largest gradient, not their own.
    scale = max(float(np.abs(a).max()) for a in grads1)
    for a, b in zip(grads1, grads2):
      assert_close_f32(b, a, reduction, 2 * depth, scale=scale)

    it1 = iter(tf.distribute.get_strategy().distribute_datasets_from_function(dataset_fn))
    it2 = iter(mirrored_strategy.distribute_datasets_from_function(dataset_fn))
    start = single.model.get_weights()
    start_averaged = single.averaged_model.get_weights()
    m1 = single.loop.train(it1, 1).metrics
    m2 = mirrored.loop.train(it2, 1).metrics
    assert m1["gradient_norm"] > 0.1, m1  # the clip is active
    for key in m1:
      np.testing.assert_allclose(m1[key], m2[key], rtol=1e-4, atol=1e-6, err_msg=key)
    # The step moves weights by ~lr * g, far below a relative tolerance on the weights
    # themselves: compare the moves, up to the rounding of w +- move at |w|'s scale (2
    # roundings) plus the gradients' own tolerance carried into the move.
    for before, after1, after2 in [(start, single.model.get_weights(),
                                    mirrored.model.get_weights()),
                                   (start_averaged, single.averaged_model.get_weights(),
                                    mirrored.averaged_model.get_weights())]:
      move_scale = max(float(np.abs(a - w).max()) for w, a in zip(before, after1))
      for w, a, b in zip(before, after1, after2):
        atol = f32_atol(w, depth=2) + f32_atol(move_scale, reduction, 2 * depth)
        np.testing.assert_allclose(b - w, a - w, rtol=0.0, atol=atol)
    print("OK", out1["loss"].numpy(), m1["gradient_norm"])
  """)
  assert "OK" in out
