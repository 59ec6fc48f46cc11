"""The classification loop: frozen vs fine-tuned encoder, resume, early stopping, sweep."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import classifiers, classify, configs, encoders
from cpc_tf.configs import ClassifierConfig, HParams, SweepConfig
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


def values(variables):
  return [v.numpy().copy() for v in variables]


def test_frozen_phase_keeps_the_encoder_bit_for_bit_and_fine_tuning_changes_it(
    model_dir, tmp_path):
  model = make_model(model_dir)
  strategy = tf.distribute.get_strategy()
  encoder_before, head_before = values(model.encoder.weights), values(model.head.weights)
  loop = classify.Loop(model, [classify.Group(classify.sgd(HParams(), 0.9),
                                              model.head.trainable_variables)],
                       train_encoder=False, strategy=strategy)
  done = classify.train_phase(str(tmp_path / "frozen"), loop, random_images, 2, 2,
                              track={"head": model.head}, log=lambda _: None)
  assert done["steps"] == 2
  for a, b in zip(encoder_before, values(model.encoder.weights)):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b)
             for a, b in zip(head_before, values(model.head.weights)))

  groups = [classify.Group(classify.sgd(HParams(), 0.9), model.head.trainable_variables),
            classify.Group(keras.optimizers.Adam(1e-3), model.encoder.trainable_variables)]
  loop = classify.Loop(model, groups, train_encoder=True, strategy=strategy)
  classify.train_phase(str(tmp_path / "finetune"), loop, random_images, 2, 2,
                       phase="finetune", log=lambda _: None)
  changed = [not np.array_equal(a, b)
             for a, b in zip(encoder_before, values(model.encoder.weights))]
  assert sum(changed) > len(changed) // 2


def test_interrupted_phase_resumes_where_it_stopped(model_dir, tmp_path):
  run_dir = str(tmp_path / "run")

  def attempt(budget):
    model = make_model(model_dir)
    loop = classify.Loop(model, [classify.Group(keras.optimizers.SGD(0.1),
                                                model.head.trainable_variables)],
                         False, tf.distribute.get_strategy())
    lines = []
    done = classify.train_phase(run_dir, loop, random_images, 3, 2,
                                track={"head": model.head}, budget=classify.Budget(budget),
                                log=lines.append)
    return done, lines, model

  with pytest.raises(classify.Interrupted, match="stopped at step 1 of frozen"):
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


def test_early_stopping_keeps_the_best_validation_weights(model_dir, tmp_path):
  model = make_model(model_dir)
  strategy = tf.distribute.get_strategy()
  # A learning rate of 0: validation never improves after the first evaluation.
  loop = classify.Loop(model, [classify.Group(keras.optimizers.SGD(0.0),
                                              model.head.trainable_variables)],
                       False, strategy)
  validation = strategy.distribute_datasets_from_function(
      lambda ctx: random_images(ctx, 7).take(2))
  done = classify.train_phase(str(tmp_path), loop, random_images, 10, 1,
                              validation=validation, patience=2, log=lambda _: None)
  assert done["stopped_early"] and done["steps"] == 3 and done["best_step"] == 1
  assert 0.0 <= done["val_top1"] <= done["val_top5"] <= 1.0
  m = loop.evaluate(validation)
  assert m["count"] == 8 and m["top1"] == pytest.approx(done["val_top1"])


def test_sweep_points():
  given = HParams(learning_rate=0.3)
  assert classify.sweep_points(SweepConfig(size=1), given) == [given]
  grid = classify.sweep_points(SweepConfig(size=0), given)
  assert len(grid) == 96 and len(set(grid)) == 96  # 3 lr x 4 wd x 4 dropout x 2 batch
  assert {p.learning_rate for p in grid} == {0.05, 0.1, 0.2}
  assert {p.weight_decay for p in grid} == {1e-5, 1e-4, 1e-3, 1e-2}
  assert {p.batch_per_replica for p in grid} == {16, 32}
  three = classify.sweep_points(SweepConfig(size=3, seed=4), given)
  assert three == classify.sweep_points(SweepConfig(size=3, seed=4), given)
  assert three != classify.sweep_points(SweepConfig(size=3, seed=5), given)
  assert set(three) <= set(grid)
  with pytest.raises(ValueError, match="exceeds the 96 grid points"):
    classify.sweep_points(SweepConfig(size=97), given)
  rows = [{"point": 0, "val_top1": 0.5}, {"point": 1, "val_top1": 0.7},
          {"point": 2, "val_top1": 0.7}]
  assert classify.best_point(rows)["point"] == 1


def test_output_dir_of_another_run_is_refused(tmp_path):
  config = configs.efficient_tiny()
  classify._check_run(str(tmp_path), "efficient", "/runs/a", config)
  longer = configs.replace(config, frozen_steps=40, **{"sweep.size": 3})
  classify._check_run(str(tmp_path), "efficient", "/runs/a", longer)  # budgets may grow
  with pytest.raises(ValueError, match="encoder: saved '/runs/a', now '/runs/b'"):
    classify._check_run(str(tmp_path), "efficient", "/runs/b", longer)
  with pytest.raises(ValueError, match="config.subset.label_fraction: saved 1.0, now 0.5"):
    classify._check_run(str(tmp_path), "efficient", "/runs/a",
                        configs.replace(longer, **{"subset.label_fraction": 0.5}))
  assert json.load(open(tmp_path / "config.json"))["config"]["frozen_steps"] == 40


@pytest.mark.slow
def test_all_protocols_run_under_a_mirrored_strategy(model_dir, tmp_path):
  """Two logical CPU replicas: uneven last evaluation batches, per-replica SGD/Adam."""
  script = textwrap.dedent(f"""
      import tensorflow as tf
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      from cpc_tf import classify, configs, train
      s = train.make_strategy("mirrored")
      assert s.num_replicas_in_sync == 2
      few = {{"subset.data.max_examples": 50, "hparams.batch_per_replica": 4}}
      c = configs.replace(configs.efficient_tiny(), image_size=16, frozen_steps=2,
                          finetune_steps=2, eval_every=1, **few)
      assert len(classify.train_efficient({model_dir!r}, c, {str(tmp_path / "e")!r}, s,
                                          verbose=False)["rows"]) == 4
      c = configs.replace(configs.supervised_tiny(), image_size=16, train_steps=2, **few)
      classify.train_supervised(c, {str(tmp_path / "s")!r}, s, verbose=False)
      c = configs.replace(configs.linear_eval_tiny(), train_steps=2, batch_size=8,
                          **{{"data.max_examples": 30}})
      doc = classify.train_linear({model_dir!r}, c, {str(tmp_path / "l")!r}, s,
                                  verbose=False)
      print("rows", doc["rows"])
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert "CPC v2 linear" in proc.stdout


@pytest.mark.parametrize("protocol, name", [
    (p, n) for p, presets in configs.EVAL_PRESETS.items() for n in presets])
def test_eval_presets_round_trip(protocol, name):
  config = configs.eval_preset(protocol, name)
  assert configs.from_dict(type(config), json.loads(json.dumps(configs.to_dict(config)))) \
      == config


def test_paper_values_of_the_evaluation_configs():
  linear = configs.linear_eval_paper()
  assert (linear.learning_rate, linear.batch_size) == (5e-4, 512)  # supp. B
  efficient = configs.efficient_paper()
  assert (efficient.classifier.blocks, efficient.classifier.width,
          efficient.classifier.bottleneck) == (11, 4096, 1024)  # supp. C.2
  assert efficient.image_size == 224 and efficient.subset.validation_size == 10_000
  assert efficient.sweep.size == 0 and efficient.momentum == 0.9
  assert configs.supervised_paper().architecture == "resnet50_v2"
  with pytest.raises(ValueError, match="Unknown efficient preset 'nope'"):
    configs.eval_preset("efficient", "nope")
  with pytest.raises(ValueError, match="dropout=1.0"):
    HParams(dropout=1.0)


MULTI_WORKER = """
import json, sys
sys.path.insert(0, {tests!r})
from cpc_tf import classify, configs, train
strategy = train.make_strategy("multi_worker")
config = configs.replace(
    configs.efficient_tiny(), image_size=16, frozen_steps=2, finetune_steps=2,
    eval_every=1, **{{"subset.data.max_examples": 50, "hparams.batch_per_replica": 4}})
doc = classify.train_efficient({model_dir!r}, config, {out!r}, strategy, verbose=False)
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
