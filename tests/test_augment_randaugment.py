"""cpc_tf.augment.randaugment: supp. A step 1, two random ops drawn per patch."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.augment.randaugment import rand_augment

N, P = 16, 16
SEED = tf.constant([7, 11])


def _same_image_tiled():
  image = np.random.default_rng(0).random((1, P, P, 3)).astype(np.float32)
  return tf.constant(np.repeat(image, N, axis=0))


def test_eager_and_tf_data_agree_and_keep_shape_and_range():
  images = _same_image_tiled()
  eager = rand_augment(images, SEED).numpy()
  ds = tf.data.Dataset.from_tensor_slices(images).batch(N).map(
      lambda x: rand_augment(x, SEED))
  graph = next(iter(ds)).numpy()
  assert eager.shape == (N, P, P, 3) and eager.dtype == np.float32
  assert 0.0 <= eager.min() and eager.max() <= 1.0
  # Another graph (tf.data): a few float32 roundings of [0, 1] pixels per op (~8 eps).
  np.testing.assert_allclose(eager, graph, atol=1e-6)


def test_patches_of_one_image_get_different_ops():
  # Keras' RandAugment would give every patch the same ops; here a tiled image
  # must come out as many different patches.
  out = rand_augment(_same_image_tiled(), SEED).numpy()
  distinct = {out[i].round(4).tobytes() for i in range(N)}
  assert len(distinct) >= N // 2


def test_fixed_seed_reproduces_and_other_seed_differs():
  images = _same_image_tiled()
  a = rand_augment(images, SEED).numpy()
  np.testing.assert_array_equal(a, rand_augment(images, SEED).numpy())
  assert not np.array_equal(a, rand_augment(images, tf.constant([7, 12])).numpy())


def test_zero_ops_is_identity():
  images = _same_image_tiled()
  np.testing.assert_array_equal(rand_augment(images, SEED, num_ops=0).numpy(),
                                images.numpy())


@pytest.mark.parametrize("shape", [(P, P, 3), (N, P, P, 4), (N, P, P)])
def test_bad_shape_names_the_shape(shape):
  with pytest.raises(ValueError, match=r"\(" + ", ".join(map(str, shape))):
    rand_augment(tf.zeros(shape), SEED)


def test_bad_seed_and_dtype():
  with pytest.raises(ValueError, match="seed"):
    rand_augment(tf.zeros([1, P, P, 3]), tf.constant([1, 2, 3]))
  with pytest.raises(ValueError, match="float32"):
    rand_augment(tf.zeros([1, P, P, 3], tf.uint8), SEED)
