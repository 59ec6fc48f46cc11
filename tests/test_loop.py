"""The evaluation loop and its phase: frozen vs fine-tuned encoder, resume, early stopping."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import configs, stop
from cpc_tf import loop as shared
from cpc_tf.configs import ClassifierConfig, HParams
from cpc_tf.eval import classifiers, encoders, sweep
from cpc_tf.eval import loop as loop_lib
from test_encoders import pretrained_model_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = 16  # image side: the tiny encoder gives a 4x4 stack3 grid


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return pretrained_model_dir(tmp_path_factory)


def random_images(ctx, seed):
  b = ctx.get_per_replica_batch_size(4)
  return tf.data.Dataset.range(10**6).map(lambda i: (
      tf.random.stateless_uniform([b, SIZE, SIZE, 3], [seed, i]),
      tf.random.stateless_uniform([b], [seed, -i - 1], 0, 3, tf.int64)))


def make_model(model_dir):
  encoder = encoders.load_encoder(model_dir)
  return classifiers.efficient_classifier(
      encoder.model, ClassifierConfig(blocks=1, width=8, bottleneck=4), 3, 0.5, SIZE)


def make_loop(model, groups, train_encoder, strategy=None):
  return loop_lib.classification_loop(model, groups, train_encoder,
                                      strategy or tf.distribute.get_strategy())


def phase(run_dir, steps, eval_every, name="frozen", patience=0):
  return loop_lib.Phase(str(run_dir), name, steps, eval_every, patience=patience)


def values(variables):
  return [v.numpy().copy() for v in variables]


def test_frozen_phase_keeps_the_encoder_bit_for_bit_and_fine_tuning_changes_it(
    model_dir, tmp_path):
  model = make_model(model_dir)
  strategy = tf.distribute.get_strategy()
  encoder_before, head_before = values(model.encoder.weights), values(model.head.weights)
  loop = make_loop(model, [sweep.sgd(HParams(), 0.9, "l2", model.head.trainable_variables)],
                   False, strategy)
  done = loop_lib.run_phase(loop, phase(tmp_path / "frozen", 2, 2), random_images,
                            track={"head": model.head}, log=lambda _: None)
  assert done["steps"] == 2
  for a, b in zip(encoder_before, values(model.encoder.weights)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b)
             for a, b in zip(head_before, values(model.head.weights)))

  groups = [sweep.sgd(HParams(), 0.9, "l2", model.head.trainable_variables),
            loop_lib.Group(keras.optimizers.Adam(1e-3), model.encoder.trainable_variables)]
  loop = make_loop(model, groups, True, strategy)
  loop_lib.run_phase(loop, phase(tmp_path / "finetune", 2, 2, "finetune"), random_images,
                     log=lambda _: None)
  changed = [not np.array_equal(a, b)
             for a, b in zip(encoder_before, values(model.encoder.weights))]
  assert sum(changed) > len(changed) // 2


def test_interrupted_phase_resumes_where_it_stopped(model_dir, tmp_path):
  run_dir = str(tmp_path / "run")

  def attempt(budget):
    model = make_model(model_dir)
    loop = make_loop(model, [loop_lib.Group(keras.optimizers.SGD(0.1),
                                            model.head.trainable_variables)], False)
    lines = []
    done = loop_lib.run_phase(loop, phase(run_dir, 3, 2), random_images,
                              track={"head": model.head}, budget=loop_lib.Budget(budget),
                              log=lines.append)
    return done, lines, model

  with pytest.raises(stop.Interrupted, match="stopped at step 1 of frozen"):
    attempt(1)
  assert tf.train.latest_checkpoint(run_dir).endswith("ckpt-1")
  done, lines, model = attempt(None)
  assert lines[0] == "frozen (point 0): resuming at step 1 of 3"
  assert done["steps"] == 3 and os.path.exists(os.path.join(run_dir, "done.json"))
  # A finished phase is not retrained: its weights are restored.
  again, lines, restored = attempt(None)
  assert again == done and lines == []
  for a, b in zip(values(model.head.weights), values(restored.head.weights)):
    np.testing.assert_array_equal(a, b)


def test_a_phase_with_ten_timed_steps_projects_its_wall_time_once(model_dir, tmp_path):
  model = make_model(model_dir)
  loop = make_loop(model, [loop_lib.Group(keras.optimizers.SGD(0.1),
                                          model.head.trainable_variables)], False)
  lines = []
  loop_lib.run_phase(loop, phase(tmp_path / "long", 12, 1), random_images,
                     track={"head": model.head}, log=lines.append)
  projected = [i for i, line in enumerate(lines) if "Projected" in line]
  assert len(projected) == 1, lines
  line = lines[projected[0]]
  # The first call traces and is not timed: steps 2 to 11 are the first ten timed.
  assert line.startswith("frozen (point 0): Projected: ") and "over 10 timed steps" in line
  assert line.endswith("for the 1 steps left")
  assert lines[projected[0] + 1].startswith("frozen (point 0) step 11/12: loss ")
  short = []
  loop_lib.run_phase(loop, phase(tmp_path / "short", 5, 1), random_images,
                     track={"head": model.head}, log=short.append)
  assert len(short) == 5 and not any("Projected" in line for line in short)


def test_early_stopping_keeps_the_best_validation_weights(model_dir, tmp_path):
  model = make_model(model_dir)
  strategy = tf.distribute.get_strategy()
  # A learning rate of 0: validation never improves after the first evaluation.
  loop = make_loop(model, [loop_lib.Group(keras.optimizers.SGD(0.0),
                                          model.head.trainable_variables)], False, strategy)
  validation = strategy.distribute_datasets_from_function(
      lambda ctx: random_images(ctx, 7).take(2))
  done = loop_lib.run_phase(loop, phase(tmp_path, 10, 1, patience=2), random_images,
                            validate=lambda: loop_lib.evaluate(loop, validation),
                            log=lambda _: None)
  assert done["stopped_early"] and done["steps"] == 3 and done["best_step"] == 1
  assert 0.0 <= done["val_top1"] <= done["val_top5"] <= 1.0
  m = loop_lib.evaluate(loop, validation)
  assert m["count"] == 8 and m["top1"] == pytest.approx(done["val_top1"])


def test_early_stopping_restores_the_best_validated_weights_not_the_last(model_dir, tmp_path):
  # The head keeps training (lr > 0) while a scripted validation peaks at its
  # second evaluation; the weights seen then must come back, not the last ones.
  model = make_model(model_dir)
  strategy = tf.distribute.get_strategy()
  loop = make_loop(model, [loop_lib.Group(keras.optimizers.SGD(0.5),
                                          model.head.trainable_variables)], False, strategy)
  scores, seen = iter([0.2, 0.9, 0.5, 0.4, 0.3]), []

  def validate():
    seen.append(values(model.head.weights))
    top1 = next(scores)
    return {"top1": top1, "top5": top1}

  done = loop_lib.run_phase(loop, phase(tmp_path, 10, 2, patience=3), random_images,
                            validate=validate, log=lambda _: None)
  assert done["stopped_early"] and done["steps"] == 10 and done["best_step"] == 4
  assert done["val_top1"] == pytest.approx(0.9)
  best, last = seen[1], seen[-1]
  assert any(not np.array_equal(a, b) for a, b in zip(best, last))  # training moved them
  for got, want in zip(values(model.head.weights), best):
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("args, want", [
    # (steps, epochs, eval_every, eval_every_epochs, examples, batch) -> (steps, every)
    ((500, 0.0, 50, 0.0, 1000, 10), (500, 50)),  # no epochs: the step budget
    ((500, 2.0, 50, 0.5, 1000, 10), (200, 50)),  # 2 epochs of 100 steps; 0.5 epoch = 50
    ((500, 3.0, 500, 1.0, 95, 10), (29, 10)),  # ceil(28.5), ceil(9.5)
    ((150, 2.0, 50, 1.0, 1000, 10), (150, 50)),  # the caps bind: at most 150, every 50
    ((500, 0.01, 50, 0.001, 100, 32), (1, 1)),  # at least one step
])
def test_epoch_budget_counts_passes_over_the_labelled_images_up_to_the_caps(args, want):
  assert loop_lib.epoch_budget(*args) == want


def test_epoch_budget_refuses_an_empty_set():
  with pytest.raises(ValueError, match="0 examples"):
    loop_lib.epoch_budget(10, 1.0, 5, 0.0, 0, 8)


def l2_hand_case(strategy, wd=0.25, lr=1.0):
  """One plain SGD step on sum(x @ W + b) / B with an L2 term: (W0, W1, b0, b1, mean x).

  The data gradient is mean_x[:, None] for every column of W and 1 for b, so
  W1 = W0 - lr * (mean_x + wd * W0) and b1 = b0 - lr exactly (no decay on b).
  """
  x = tf.constant([[1.0, -2.0, 0.5], [3.0, 0.0, -1.5], [-1.0, 4.0, 2.0],
                   [0.0, 1.0, 1.0]])
  with strategy.scope():
    model = keras.layers.Dense(2, name="dense")
    model.build((None, 3))
    model.kernel.assign([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
    model.bias.assign([0.3, -0.2])
    groups = [loop_lib.Group(keras.optimizers.SGD(lr), model.trainable_variables, l2=wd)]
  w0, b0 = model.kernel.numpy().copy(), model.bias.numpy().copy()
  loop = loop_lib.Loop(model, groups, lambda m, batch: tf.reduce_sum(m(batch)) / tf.cast(
      tf.shape(batch)[0], tf.float32), strategy)
  dist = strategy.distribute_datasets_from_function(
      lambda ctx: tf.data.Dataset.from_tensors(x).rebatch(
          ctx.get_per_replica_batch_size(4)).repeat())
  loop.train(iter(dist), 1)
  return w0, model.kernel.numpy(), b0, model.bias.numpy(), x.numpy().mean(0)


def _dense_and_norm():
  dense, norm = keras.layers.Dense(2), keras.layers.LayerNormalization()
  dense.build((None, 3))
  norm.build((None, 3))
  return dense.trainable_variables + norm.trainable_variables


def test_l2_term_adds_wd_times_w_to_the_kernel_gradient_only():
  wd, lr = 0.25, 1.0
  w0, w1, b0, b1, mean_x = l2_hand_case(tf.distribute.get_strategy(), wd, lr)
  gradient = (w0 - w1) / lr
  # TF1 l2_regularizer(scale): scale * sum(w^2) / 2, gradient scale * w (float32 sums).
  np.testing.assert_allclose(gradient, mean_x[:, None] + wd * w0, rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose((b0 - b1) / lr, [1.0, 1.0], rtol=1e-6)  # biases: no L2
  assert [v.name for v in loop_lib.decayed(_dense_and_norm())] == ["kernel"]
  with pytest.raises(ValueError, match="l2=-1"):
    loop_lib.Group(keras.optimizers.SGD(0.1), [], l2=-1.0)


def test_l2_term_counts_once_over_replicas():
  """Two logical CPU replicas: each adds the L2 term, divided by R and summed = once."""
  script = textwrap.dedent("""
      import sys
      import numpy as np
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      sys.path.insert(0, "tests")
      from test_loop import l2_hand_case
      s = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
      w0, w1, b0, b1, mean_x = l2_hand_case(s, 0.25, 1.0)
      np.testing.assert_allclose(w0 - w1, mean_x[:, None] + 0.25 * w0, rtol=1e-6,
                                 atol=1e-6)
      np.testing.assert_allclose(b0 - b1, [1.0, 1.0], rtol=1e-6)
      print("L2 OK")
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert "L2 OK" in proc.stdout


@pytest.mark.slow
def test_all_protocols_run_under_a_mirrored_strategy(model_dir, tmp_path):
  """Two logical CPU replicas: uneven last evaluation batches, per-replica SGD/Adam."""
  script = textwrap.dedent(f"""
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from cpc_tf import configs, distribute
      from cpc_tf.eval import efficient, linear, supervised
      s = distribute.make_strategy("mirrored")
      assert s.num_replicas_in_sync == 2
      few = {{"subset.data.max_examples": 50, "hparams.batch_per_replica": 4}}
      c = configs.replace(configs.efficient_tiny(), image_size=16, frozen_steps=2,
                          finetune_steps=2, eval_every=1, **few)
      assert len(efficient.train_efficient({model_dir!r}, c, {str(tmp_path / "e")!r}, s,
                                          verbose=False)["rows"]) == 4
      c = configs.replace(configs.supervised_tiny(), image_size=16, train_steps=2, **few)
      supervised.train_supervised(c, {str(tmp_path / "s")!r}, s, verbose=False)
      c = configs.replace(configs.linear_eval_tiny(), train_steps=2, batch_size=8,
                          **{{"data.max_examples": 30}})
      doc = linear.train_linear({model_dir!r}, c, {str(tmp_path / "l")!r}, s,
                                  verbose=False)
      print("rows", doc["rows"])
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert "CPC v2 linear" in proc.stdout


MULTI_WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
from cpc_tf import configs, distribute
from cpc_tf.eval import efficient
strategy = distribute.make_strategy("multi_worker")
config = configs.replace(
    configs.efficient_tiny(), image_size=16, frozen_steps=2, finetune_steps=2,
    eval_every=1, **{{"subset.data.max_examples": 50, "hparams.batch_per_replica": 4}})
doc = efficient.train_efficient({model_dir!r}, config, {out!r}, strategy, verbose=False)
print("RESULT " + json.dumps(doc["rows"]))
"""


@pytest.mark.slow
def test_two_workers_share_one_output_dir(model_dir, tmp_path):
  """Only the chief writes output_dir; the other worker's scratch files are gone."""
  from test_multiworker import run_workers
  out = str(tmp_path / "efficient")
  rows = run_workers(textwrap.dedent(MULTI_WORKER.format(
      tests=os.path.join(ROOT, "tests"), model_dir=model_dir, out=out)))
  assert rows[0] == rows[1] and len(rows[0]) == 4
  written = {r["split"] + r["method"]: r for r in json.load(open(f"{out}/results.json"))["rows"]}
  assert written == {r["split"] + r["method"]: r for r in rows[0]}
  leftovers = [d for d, _, _ in os.walk(out) if ".worker-" in d]
  assert not leftovers, leftovers


# A phase whose process receives SIGTERM (sent by its own validation, so the
# signal arrives at a known step without any timing): before issue 9 SIGTERM
# killed the evaluation binaries without a checkpoint of the steps since the last.
SIGTERM_PHASE = """
import os, signal, sys
import keras
import tensorflow as tf
from cpc_tf import stop
from cpc_tf.eval import loop as loop_lib

model = keras.Sequential([keras.Input([3]), keras.layers.Dense(2)])
groups = [loop_lib.Group(keras.optimizers.SGD(0.1), model.trainable_variables)]
loop = loop_lib.Loop(model, groups, lambda m, b: tf.reduce_mean(tf.square(m(b))),
                     tf.distribute.get_strategy())

def train_fn(ctx, seed):
  return tf.data.Dataset.from_tensors(tf.ones([2, 3])).repeat()

def validate():
  os.kill(os.getpid(), signal.SIGTERM)
  return {"top1": 0.5, "top5": 1.0}

try:
  loop_lib.run_phase(loop, loop_lib.Phase(sys.argv[1], "linear", 1000, 3), train_fn,
                     validate=validate, log=lambda line: None)
except stop.Stopped as e:
  print(e)
  sys.exit(e.status)
"""


def test_sigterm_stops_a_phase_with_a_checkpoint_and_status_143(tmp_path):
  run_dir = str(tmp_path / "linear")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
  proc = subprocess.run([sys.executable, "-c", SIGTERM_PHASE, run_dir], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 128 + 15, proc.stdout[-3000:] + proc.stderr[-3000:]
  assert "SIGTERM at step 3 of linear (point 0), checkpoint saved" in proc.stdout
  assert tf.train.latest_checkpoint(run_dir).endswith("ckpt-3")


def test_the_stop_vote_runs_no_step_and_a_non_finite_loss_ends_the_call():
  model = keras.Sequential([keras.Input([3]), keras.layers.Dense(2)])
  groups = [shared.Group(keras.optimizers.SGD(0.1), model.trainable_variables)]
  loop = shared.Loop(tf.distribute.get_strategy(), groups,
                     lambda x: {"loss": tf.reduce_mean(tf.square(model(x)))})
  batches = iter(tf.data.Dataset.from_tensor_slices(
      tf.constant([[1.0, 2.0, 3.0]] * 2 + [[np.nan] * 3] * 3)[:, None]))
  before = values(model.weights)
  stopped = loop.train(batches, 2, stop_requested=True)
  assert stopped.stop and stopped.done == 0 and stopped.finite
  for a, b in zip(before, values(model.weights)):
    np.testing.assert_array_equal(a, b)
  ran = loop.train(batches, 2)
  assert not ran.stop and ran.done == 2 and ran.finite and ran.metrics["gradient_norm"] > 0
  broken = loop.train(batches, 3)
  assert broken.done == 1 and not broken.finite
