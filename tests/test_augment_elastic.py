"""cpc_tf.augment.elastic: supp. A step 2, elastic deformation and shearing per patch."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.augment.elastic import elastic_shear
from tolerances import f32_atol

N, P = 6, 20
SEED = tf.constant([1, 9])


def _images():
  return tf.constant(np.random.default_rng(0).random((N, P, P, 3)), tf.float32)


def test_eager_and_tf_data_agree_and_keep_shape_and_range():
  images = _images()
  fn = lambda x: elastic_shear(x, SEED)
  eager = fn(images).numpy()
  ds = tf.data.Dataset.from_tensor_slices(images).batch(N).map(fn)
  # Another graph: sampling coordinates of scale P pixels, from a 4-term bilinear field
  # and ~4 more roundings, times the pixel slope (<= 1 for [0, 1] noise); 6x above the
  # 1.6e-6 measured here.
  np.testing.assert_allclose(eager, next(iter(ds)).numpy(), rtol=0.0,
                             atol=f32_atol(P, reduction=4, depth=4))
  assert eager.shape == (N, P, P, 3) and eager.dtype == np.float32
  assert 0.0 <= eager.min() and eager.max() <= 1.0
  np.testing.assert_array_equal(eager, fn(images).numpy())  # same ops, inputs, process
  assert not np.array_equal(eager, elastic_shear(images, tf.constant([1, 10])).numpy())


def test_zero_field_and_zero_shear_is_identity():
  images = _images()
  out = elastic_shear(images, SEED, sigma=0.0, max_shear=0.0).numpy()
  np.testing.assert_allclose(out, images.numpy(), atol=1e-6)


def test_pure_shear_is_affine_and_differs_per_patch():
  # A horizontal line through the centre row stays put under shear x, a
  # vertical line tilts: the deformation is the documented shear about the centre.
  image = np.zeros((P, P, 3), np.float32)
  image[:, P // 2] = 1.0
  images = tf.constant(np.repeat(image[None], N, axis=0))
  out = elastic_shear(images, SEED, sigma=0.0, max_shear=0.3).numpy()
  tops = np.argmax(out[:, 0, :, 0], axis=1)
  bottoms = np.argmax(out[:, -1, :, 0], axis=1)
  assert len(set(tops - bottoms)) > 1  # per-patch shear amounts
  np.testing.assert_allclose(out[:, P // 2, P // 2, 0], 1.0, atol=0.3)


def test_field_is_smooth():
  # Neighbouring output pixels sample nearby input points: a smooth image stays smooth.
  ramp = np.linspace(0, 1, P, dtype=np.float32)
  images = tf.constant(np.broadcast_to(ramp[None, None, :, None], (N, P, P, 3)).copy())
  out = elastic_shear(images, SEED, sigma=0.05, max_shear=0.0).numpy()
  assert np.abs(np.diff(out, axis=2)).max() < 4.0 / P
  assert np.abs(out - images.numpy()).max() > 0.01


def test_bad_shape_names_the_shape():
  with pytest.raises(ValueError, match=r"\(20, 20, 3\)"):
    elastic_shear(tf.zeros([P, P, 3]), SEED)
