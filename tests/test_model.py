"""The CPC model end to end: inputs, shapes, training signal, fit."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import configs, patches
from cpc_tf.model import CPCModel, build_model


@pytest.fixture(scope="module")
def tiny_model():
  return build_model(configs.tiny().model)


def test_latent_grid_shape(tiny_model):
  z = tiny_model.latents(tf.random.uniform([3, 32, 32, 3]))
  assert z.shape == (3, 4, 4, 32)


def test_images_and_patches_give_the_same_loss(tiny_model):
  images = tf.random.stateless_uniform([2, 32, 32, 3], seed=[1, 2])
  from_images = tiny_model(images)
  from_patches = tiny_model(patches.extract_patches(images, 8, 8))
  for key in from_images:
    # The same ops on the same patches (extraction only copies pixels): equal to ~8 eps.
    np.testing.assert_allclose(from_images[key], from_patches[key], rtol=1e-6)


def test_patches_are_encoded_independently(tiny_model):
  """Each latent depends only on its own patch (no leak through the encoder)."""
  images = tf.random.stateless_uniform([1, 32, 32, 3], seed=[3, 4])
  z = tiny_model.latents(images).numpy()
  changed = images.numpy()
  changed[0, :8, :8] = 0.0  # patch (0, 0) only
  z2 = tiny_model.latents(changed).numpy()
  diff = np.abs(z2 - z).max(-1)[0]
  assert diff[0, 0] > 0 and np.all(np.delete(diff.ravel(), 0) == 0)


def test_output_keys(tiny_model):
  out = tiny_model(tf.zeros([1, 32, 32, 3]))
  dirs = configs.DIRECTIONS
  assert set(out) == {"loss"} | {f"{k}/{d}" for k in ("loss", "accuracy") for d in dirs}
  np.testing.assert_allclose(out["loss"], sum(out[f"loss/{d}"] for d in dirs), rtol=1e-6)


@pytest.mark.parametrize("shape", [[1, 30, 30, 3], [1, 4, 4, 8, 8, 1], [1, 3, 4, 8, 8, 3]])
def test_wrong_input_shapes_are_clear_errors(tiny_model, shape):
  with pytest.raises(ValueError, match="Expected"):
    tiny_model(tf.zeros(shape))


def test_grid_too_small_for_offsets_is_refused_when_the_config_is_built():
  with pytest.raises(ValueError, match="too small"):
    configs.replace(configs.tiny().model, **{"head.steps_to_predict": 4,
                                             "head.steps_to_ignore": 2})


def test_loss_falls_on_a_fixed_batch():
  keras.utils.set_random_seed(0)
  model = build_model(configs.tiny().model)
  batch = tf.random.stateless_uniform([4, 32, 32, 3], seed=[5, 6])
  optimizer = keras.optimizers.Adam(1e-2)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      out = model(batch, training=True)
    grads = tape.gradient(out["loss"], model.trainable_variables)
    optimizer.apply(grads, model.trainable_variables)
    return out["loss"]

  losses = [float(step()) for _ in range(30)]
  assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5]), losses


def test_checkpoint_round_trip_holds_every_weight(tmp_path):
  """tf.train.Checkpoint must see the head too (list-held layers are not tracked)."""
  model = build_model(configs.tiny().model)
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
  saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
  assert len(saved) == len(model.weights)
  assert any(name.startswith("model/head/left/context/block0_row") for name in saved)
  fresh = build_model(configs.tiny().model)
  tf.train.Checkpoint(model=fresh).read(path).assert_existing_objects_matched()
  for a, b in zip(model.weights, fresh.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
