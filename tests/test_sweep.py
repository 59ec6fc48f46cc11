"""The supp. C.1 sweep and the output-directory guard of the classification protocols."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import configs, resnet
from cpc_tf.configs import ClassifierConfig, EncoderConfig, HParams, SweepConfig
from cpc_tf.eval import classifiers, sweep
from cpc_tf.eval import loop as loop_lib


def test_sweep_points():
  given = HParams(learning_rate=0.3)
  assert sweep.sweep_points(SweepConfig(size=1), given) == [given]
  grid = sweep.sweep_points(SweepConfig(size=0), given)
  assert len(grid) == 96 and len(set(grid)) == 96  # 3 lr x 4 wd x 4 dropout x 2 batch
  assert {p.learning_rate for p in grid} == {0.05, 0.1, 0.2}
  assert {p.weight_decay for p in grid} == {1e-5, 1e-4, 1e-3, 1e-2}
  assert {p.batch_per_replica for p in grid} == {16, 32}
  three = sweep.sweep_points(SweepConfig(size=3, seed=4), given)
  assert three == sweep.sweep_points(SweepConfig(size=3, seed=4), given)
  assert three != sweep.sweep_points(SweepConfig(size=3, seed=5), given)
  assert set(three) <= set(grid)
  with pytest.raises(ValueError, match="exceeds the 96 grid points"):
    sweep.sweep_points(SweepConfig(size=97), given)
  rows = [{"point": 0, "val_top1": 0.5}, {"point": 1, "val_top1": 0.7},
          {"point": 2, "val_top1": 0.7}]
  assert sweep.best_point(rows)["point"] == 1


def test_output_dir_of_another_run_is_refused(tmp_path):
  config = configs.efficient_tiny()
  sweep.check_run(str(tmp_path), "efficient", "/runs/a", config)
  # A phase checkpoint below the directory: from now on its record binds.
  (tmp_path / "point-0" / "frozen").mkdir(parents=True)
  (tmp_path / "point-0" / "frozen" / "checkpoint").write_text("")
  longer = configs.replace(config, frozen_steps=40, **{"sweep.size": 3})
  sweep.check_run(str(tmp_path), "efficient", "/runs/a", longer)  # budgets may grow
  with pytest.raises(ValueError, match="encoder: saved '/runs/a', now '/runs/b'"):
    sweep.check_run(str(tmp_path), "efficient", "/runs/b", longer)
  with pytest.raises(ValueError, match="config.subset.label_fraction: saved 1.0, now 0.5"):
    sweep.check_run(str(tmp_path), "efficient", "/runs/a",
                        configs.replace(longer, **{"subset.label_fraction": 0.5}))
  # Written once; the grown budget is an appended change.
  assert json.load(open(tmp_path / "config.json"))["config"]["frozen_steps"] == config.frozen_steps
  changes = json.load(open(tmp_path / "config_changes.json"))
  assert changes[-1]["changes"]["config.frozen_steps"]["to"] == 40


def dense_and_norm():
  dense, norm = keras.layers.Dense(2, name="dense"), keras.layers.LayerNormalization()
  dense.build((None, 3))
  norm.build((None, 3))
  dense.kernel.assign([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
  return dense.trainable_variables + norm.trainable_variables


def test_l2_mode_puts_the_decay_into_the_loss_not_the_optimizer():
  variables = dense_and_norm()
  group = sweep.sgd(HParams(learning_rate=0.1, weight_decay=1e-3), 0.9, "l2", variables)
  assert group.l2 == 1e-3 and group.optimizer.weight_decay is None
  assert group.variables == variables and group.optimizer.momentum == 0.9
  no_decay = sweep.sgd(HParams(weight_decay=0.0), 0.9, "l2", variables)
  assert no_decay.l2 == 0.0 and no_decay.optimizer.weight_decay is None
  with pytest.raises(ValueError, match="weight_decay_mode='l1'"):
    sweep.sgd(HParams(), 0.9, "l1", variables)


def test_decoupled_mode_is_keras_weight_decay_as_before():
  """Two momentum steps by hand: w -= lr * wd * w, then m = 0.9 m - lr g, w += m."""
  lr, wd, momentum = 0.1, 0.05, 0.9
  variables = dense_and_norm()
  group = sweep.sgd(HParams(learning_rate=lr, weight_decay=wd), momentum, "decoupled",
                    variables)
  assert group.l2 == 0.0 and group.optimizer.weight_decay == pytest.approx(wd)
  group.optimizer.build(variables)
  start = [v.numpy().copy() for v in variables]
  grads = [np.full(v.shape, 0.5, np.float32) for v in variables]
  want = []
  for w, g, v in zip(start, grads, variables):
    decays = v.name == "kernel"  # biases, gamma and beta are excluded
    w, mom = w.copy(), np.zeros_like(w)
    for _ in range(2):
      if decays:
        w = w - lr * wd * w
      mom = momentum * mom - lr * g
      w = w + mom
    want.append(w)
  for _ in range(2):
    group.optimizer.apply([tf.constant(g) for g in grads], variables)
  for w, v in zip(want, variables):
    np.testing.assert_allclose(v.numpy(), w, rtol=1e-6, atol=1e-7, err_msg=v.path)


@pytest.mark.parametrize("norm", configs.NORMS)
def test_both_modes_decay_the_same_variables_of_every_classifier(norm):
  """loop.decayed (the L2 mode) = all but the names the decoupled mode excludes."""
  head = classifiers.ResNetHead(ClassifierConfig(blocks=1, width=8, bottleneck=4,
                                                 norm=norm), 3, 0.5)
  head(tf.zeros([1, 4, 4, 6]))
  encoder = resnet.build_encoder(EncoderConfig(name="tiny", norm=norm), name="encoder")
  supervised = classifiers.supervised_classifier(encoder, 3, 0.5, 16)
  for variables in (head.trainable_variables, supervised.trainable_variables):
    decayed = {id(v) for v in loop_lib.decayed(variables)}
    assert decayed
    for v in variables:
      excluded = any(name in v.name for name in sweep.NOT_DECAYED)
      assert (id(v) in decayed) != excluded, v.path


def write_old_config(directory, protocol, config, *new_fields):
  """config.json as the version before `new_fields` existed wrote it, with a checkpoint."""
  sweep.check_run(str(directory), protocol, "/runs/a", config)
  doc = json.load(open(directory / "config.json"))
  for name in new_fields:
    del doc["config"][name]
  json.dump(doc, open(directory / "config.json", "w"))
  # A phase checkpoint below the directory: its record binds a resumption.
  (directory / "point-0" / "frozen").mkdir(parents=True)
  (directory / "point-0" / "frozen" / "checkpoint").write_text("")


def test_an_output_dir_of_the_previous_version_resumes_only_with_its_settings(tmp_path):
  new = ("weight_decay_mode", "encoder_beta_1", "encoder_beta_2", "encoder_epsilon")
  old = configs.replace(configs.efficient_tiny(), weight_decay_mode="decoupled",
                        encoder_beta_1=0.9, encoder_epsilon=1e-7)
  write_old_config(tmp_path, "efficient", old, *new)
  with pytest.raises(ValueError) as error:
    sweep.check_run(str(tmp_path), "efficient", "/runs/a", configs.efficient_tiny())
  message = str(error.value)
  implied = "(implied: the record predates this field)"
  assert f"config.weight_decay_mode: saved 'decoupled' {implied}, now 'l2'" in message
  assert f"config.encoder_beta_1: saved 0.9 {implied}, now 0.8" in message
  assert f"config.encoder_epsilon: saved 1e-07 {implied}, now 1e-08" in message
  assert "config.encoder_beta_2" not in message  # Keras' and supp. A's agree
  assert "--weight_decay_mode=decoupled" in message
  sweep.check_run(str(tmp_path), "efficient", "/runs/a", old)  # the old settings resume
  # Written once: the old record still implies its settings.
  assert "weight_decay_mode" not in json.load(open(tmp_path / "config.json"))["config"]


def test_phase_two_settings_of_an_old_run_without_phase_two_may_differ(tmp_path):
  """Learning-dynamics cells (finetune=False) never build the encoder's Adam."""
  new = ("weight_decay_mode", "encoder_beta_1", "encoder_beta_2", "encoder_epsilon")
  cell = configs.replace(configs.efficient_tiny(), finetune=False)
  write_old_config(tmp_path, "efficient", cell, *new)
  with pytest.raises(ValueError, match="weight_decay_mode: saved 'decoupled'") as error:
    sweep.check_run(str(tmp_path), "efficient", "/runs/a", cell)
  assert "config.encoder_beta" not in str(error.value)
  sweep.check_run(str(tmp_path), "efficient", "/runs/a",
                  configs.replace(cell, weight_decay_mode="decoupled"))
  supervised = tmp_path / "supervised"
  write_old_config(supervised, "supervised", configs.supervised_tiny(), "weight_decay_mode")
  sweep.check_run(str(supervised), "supervised", "/runs/a",
                  configs.replace(configs.supervised_tiny(), weight_decay_mode="decoupled"))
