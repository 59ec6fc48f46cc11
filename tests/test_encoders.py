"""Loading a pre-trained encoder: averaged weights, checkpoint choice, clear errors.

`pretrained_model_dir` and `supervised_output_dir` are shared with the other
evaluation tests: one tiny run each per session, in pytest's session temp directory.
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import checkpoints, configs, train
from cpc_tf.eval import encoders, results, supervised
from tolerances import assert_close_f32, network_terms


def _random_patches(config):
  g = config.model.grid

  def fn(ctx, seed):
    b = ctx.get_per_replica_batch_size(config.batch_size)
    shape = [b, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3]
    return tf.data.Dataset.range(10**6).map(
        lambda i: tf.random.stateless_uniform(shape, seed=[seed, i]))
  return fn


def pretrained_model_dir(tmp_path_factory) -> str:
  """A 4-step tiny pre-training run (checkpoints at steps 2 and 4), made once."""
  path = tmp_path_factory.getbasetemp() / "pretrained_tiny"
  if tf.train.latest_checkpoint(str(path)) is None:
    config = configs.replace(configs.tiny(), **{"model.head.directions": ("down",)})
    train.pretrain(config, str(path), dataset_fn=_random_patches(config), verbose=False)
  return str(path)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return pretrained_model_dir(tmp_path_factory)


def test_loads_the_averaged_encoder(model_dir):
  encoder = encoders.load_encoder(model_dir)
  assert encoder.name == "tiny" and encoder.source == model_dir
  assert encoder.pretrain == checkpoints.read_config(model_dir)
  _, averaged = checkpoints.load_averaged_model(model_dir)
  for a, b in zip(encoder.model.weights, averaged.encoder.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  outputs = encoder.model(tf.zeros([1, 8, 8, 3]))
  assert {"stem", "stack1", "stack2", "stack3", "pooled"} <= set(outputs)


def test_loads_an_earlier_checkpoint(model_dir):
  early = encoders.load_encoder(model_dir, step=2)
  late = encoders.load_encoder(model_dir)
  assert early.source == f"{model_dir}@2"
  assert any(not np.array_equal(a.numpy(), b.numpy())
             for a, b in zip(early.model.weights, late.model.weights))


def test_bad_model_dirs(model_dir, tmp_path):
  with pytest.raises(FileNotFoundError, match="does not exist.*launch/pretrain.py"):
    encoders.load_encoder(str(tmp_path / "nowhere"))
  with pytest.raises(FileNotFoundError, match="not a pre-training model_dir"):
    encoders.load_encoder(str(tmp_path))
  shutil.copy(checkpoints.config_path(model_dir), tmp_path / "config.json")
  with pytest.raises(FileNotFoundError,
                     match=f"{tmp_path} has no checkpoint; run python -m launch.pretrain"):
    encoders.load_encoder(str(tmp_path))
  with pytest.raises(FileNotFoundError,
                     match="has no checkpoint at step 3; its checkpoints are at steps "):
    encoders.load_encoder(model_dir, step=3)


def test_an_encoder_that_does_not_match_is_refused(model_dir):
  with pytest.raises(ValueError, match="holds a 'tiny' encoder but this evaluation "
                     "expects 'resnet161'. Pass --encoder=tiny"):
    encoders.load_encoder(model_dir, expect="resnet161")
  config = checkpoints.read_config(model_dir)
  wrong = configs.GridConfig(image_size=32, patch_size=16, stride=8, resize_to=32)
  with pytest.raises(ValueError, match="pre-trained on 8px patches.*cuts 16px patches"):
    encoders.check_grid(config, wrong)
  encoders.check_grid(config, config.model.grid)
  assert json.load(open(checkpoints.config_path(model_dir)))["model"]["encoder"]["name"] == "tiny"


@pytest.fixture(scope="module")
def export_dir(model_dir, tmp_path_factory):
  from test_export import export_run
  path = str(tmp_path_factory.mktemp("export"))
  export_run(model_dir, path)
  return path


def test_exported_savedmodel_acts_as_the_encoder(model_dir, export_dir, tmp_path):
  import keras
  from cpc_tf import configs as c
  from cpc_tf.eval import classifiers
  exported = encoders.load(export_dir)
  assert exported.pretrain is None and exported.source == export_dir
  reference = encoders.load(model_dir).model
  images = tf.random.uniform([2, 16, 16, 3])
  out = exported.model(images)
  want = reference(images)
  assert set(out) == set(want) == {"stem", "stack1", "stack2", "stack3", "pooled"}
  reduction, depth = network_terms(reference)
  for name in want:  # the SavedModel's graph against eager Keras: float32 rounding only
    assert_close_f32(out[name], want[name], reduction, depth, err_msg=name)

  model = classifiers.efficient_classifier(
      exported.model, c.ClassifierConfig(blocks=1, width=8, bottleneck=4), 3, 0.0, 16)
  assert model.feature == "stack3"
  variables = model.encoder.trainable_variables
  before = [v.numpy().copy() for v in variables]
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(model(images, training=True, train_encoder=True))
  optimizer = keras.optimizers.Adam(1e-2)
  optimizer.apply(tape.gradient(loss, variables), variables)
  tuned = [v.numpy().copy() for v in variables]
  assert any(not np.array_equal(a, b) for a, b in zip(before, tuned))
  # Fine-tuned export weights go into (and come back from) the classifier's checkpoint.
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
  for v, b in zip(variables, before):
    v.assign(b)
  tf.train.Checkpoint(model=model).read(path).assert_existing_objects_matched()
  for v, t in zip(variables, tuned):
    np.testing.assert_array_equal(v.numpy(), t)


def test_savedmodel_refusals(export_dir, tmp_path):
  from cpc_tf.eval import linear
  with pytest.raises(ValueError, match="one set of weights, so checkpoint step 2"):
    encoders.load(export_dir, step=2)
  with pytest.raises(ValueError, match="does not record its architecture.*--encoder="):
    encoders.load(export_dir, expect="resnet161")
  with pytest.raises(ValueError, match="exported SavedModel. Linear evaluation.*--model_dir"):
    linear.train_linear(export_dir, configs.linear_eval_tiny(), str(tmp_path))


# ----------------------------------------------------------------------------
# A supervised baseline's output_dir (supp. C.1) as the encoder


def supervised_output_dir(tmp_path_factory, architecture: str = "detection_small",
                          points: int = 2) -> str:
  """A finished supervised_tiny baseline (32 px, 2 steps a point), made once per setting."""
  path = tmp_path_factory.getbasetemp() / f"supervised_{architecture}_{points}"
  if not (path / results.RESULTS_FILE).exists():
    config = configs.replace(
        configs.supervised_tiny(), architecture=architecture, train_steps=2, eval_every=1,
        **{"sweep.size": points, "sweep.batch_per_replica": (8,)})
    supervised.train_supervised(config, str(path), verbose=False)
  return str(path)


@pytest.fixture(scope="module")
def supervised_dir(tmp_path_factory):
  return supervised_output_dir(tmp_path_factory)


def _tested_point(output_dir):
  """The point the baseline tested, recomputed here: highest val_top1, first on ties."""
  rows = results.read_sweep(os.path.join(output_dir, results.SWEEP_FILE))
  assert sorted(r["point"] for r in rows) == [0, 1]
  return max(rows, key=lambda r: (r["val_top1"], -r["point"]))["point"]


def test_a_supervised_baseline_gives_the_encoder_it_tested(supervised_dir):
  encoder = encoders.load(supervised_dir)
  assert encoder.pretrain is None and encoder.supervised.norm == "batch"
  assert encoder.name == "detection_small"
  assert encoder.method == "Supervised detection_small"
  assert encoder.source == f"supervised:{supervised_dir}"
  assert set(encoder.model.output) == {"stem", "stack1", "stack2", "stack3", "pooled"}
  # The best point's best weights (what the baseline restored and tested), bit for
  # bit: every encoder variable of that checkpoint, moving statistics included.
  point = _tested_point(supervised_dir)
  path = os.path.join(supervised_dir, f"point-{point}", "supervised", "best", "ckpt")
  reader = tf.train.load_checkpoint(path)
  saved = sorted((tuple(reader.get_tensor(k).shape), reader.get_tensor(k).tobytes())
                 for k in reader.get_variable_to_shape_map() if k.startswith("model/encoder/"))
  loaded = sorted((tuple(w.shape), w.numpy().tobytes()) for w in encoder.model.weights)
  assert len(loaded) == 68 and loaded == saved
  # The same loader serves a protocol's `expect` check.
  assert encoders.load(supervised_dir, expect="detection_small").name == "detection_small"


def _copy(source, tmp_path, name):
  target = str(tmp_path / name)
  shutil.copytree(source, target)
  return target


def test_supervised_baseline_refusals(supervised_dir, tmp_path):
  with pytest.raises(ValueError, match="best sweep point, so checkpoint step 4 cannot be "
                     "chosen"):
    encoders.load(supervised_dir, step=4)
  with pytest.raises(ValueError, match="trained a 'detection_small' encoder but this "
                     "evaluation expects 'resnet161'. Pass --encoder=detection_small"):
    encoders.load(supervised_dir, expect="resnet161")

  unfinished = _copy(supervised_dir, tmp_path, "unfinished")
  os.remove(os.path.join(unfinished, results.RESULTS_FILE))
  with pytest.raises(FileNotFoundError, match="holds no results.json: the supervised "
                     "baseline has not finished"):
    encoders.load(unfinished)
  no_sweep = _copy(supervised_dir, tmp_path, "no_sweep")
  os.remove(os.path.join(no_sweep, results.SWEEP_FILE))
  with pytest.raises(FileNotFoundError, match="records 0 of the 2 sweep points: no best"):
    encoders.load(no_sweep)
  no_weights = _copy(supervised_dir, tmp_path, "no_weights")
  point = _tested_point(supervised_dir)
  shutil.rmtree(os.path.join(no_weights, f"point-{point}"))
  with pytest.raises(FileNotFoundError, match=f"best weights of sweep point {point}"):
    encoders.load(no_weights)

  # A record that does not describe the checkpoint: other shapes, or layer norm
  # (same shapes as batch norm's scale and offset, but no moving statistics).
  for name, change in (("arch", {"architecture": "tiny"}), ("norm", {"norm": "layer"})):
    mixed = _copy(supervised_dir, tmp_path, name)
    with open(os.path.join(mixed, "config.json")) as f:
      doc = json.load(f)
    doc["config"].update(change)
    with open(os.path.join(mixed, "config.json"), "w") as f:
      json.dump(doc, f)
    with pytest.raises(ValueError, match="does not hold the weights of the .* encoder.*"
                       "mixes two runs"):
      encoders.load(mixed)

  other = tmp_path / "linear_run"
  other.mkdir()
  (other / "config.json").write_text(json.dumps(
      {"protocol": "linear", "encoder": "x", "config": {}}))
  with pytest.raises(ValueError, match="output_dir of a 'linear' evaluation, which trains "
                     "no encoder"):
    encoders.load(str(other))


def test_linear_evaluation_refuses_a_supervised_baseline(supervised_dir, tmp_path):
  from cpc_tf.eval import linear
  with pytest.raises(ValueError, match="is a supervised baseline. Linear evaluation"):
    linear.train_linear(supervised_dir, configs.linear_eval_tiny(), str(tmp_path))
