"""Loading a pre-trained encoder: averaged weights, checkpoint choice, clear errors.

`pretrained_model_dir` is shared with the other evaluation tests: one tiny
pre-training run per session, in pytest's session temp directory.
"""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import checkpoints, configs, train
from cpc_tf.eval import encoders
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
