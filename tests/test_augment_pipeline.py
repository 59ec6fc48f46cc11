"""cpc_tf.augment.pipeline: supp. A steps 1-4 and the v1 ops, composed from an AugmentConfig."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import augment
from cpc_tf.configs import AugmentConfig, cpc_v2_arxiv_v1, cpc_v2_paper
from tolerances import f32_atol

N, P = 12, 16
SEED = tf.constant([21, 8])
ALL_OFF = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                        inception_color_p=0.0, grayscale_p=0.0, color_drop_p=0.0,
                        flip_p=0.0, jitter_size=0)
# One config per step, with that step always on and everything else off.
ONE_STEP = {
    "randaugment": dict(randaugment=True),
    "elastic": dict(elastic_p=1.0),
    "histogram": dict(histogram_p=1.0),
    "inception_color": dict(inception_color_p=1.0),
    "grayscale": dict(grayscale_p=1.0),
    "color_drop": dict(color_drop_p=1.0),
    "flip": dict(flip_p=1.0),
    "jitter": dict(jitter_size=12),
}


def _tiled():
  """One random patch repeated N times: any difference between outputs is augmentation."""
  image = np.random.default_rng(0).random((1, P, P, 3)).astype(np.float32)
  return tf.constant(np.repeat(image, N, axis=0))


@pytest.mark.parametrize("config", [
    cpc_v2_paper().augment,
    dataclasses.replace(cpc_v2_arxiv_v1().augment, jitter_size=12),  # 16 px test patches
], ids=["v2", "v1"])
def test_paper_pipelines_eager_and_tf_data(config):
  images = _tiled()
  fn = lambda x: augment.augment_patches(x, config, SEED)
  eager = fn(images).numpy()
  ds = tf.data.Dataset.from_tensor_slices(images).batch(N).map(fn)
  assert ds.element_spec.shape.as_list() == [None, P, P, 3]
  # Another graph (tf.data); the elastic step resamples at P-pixel coordinates: the
  # float32 tolerance of test_augment_elastic.
  np.testing.assert_allclose(eager, next(iter(ds)).numpy(), rtol=0.0,
                             atol=f32_atol(P, reduction=4, depth=4))
  assert eager.shape == (N, P, P, 3) and eager.dtype == np.float32
  assert 0.0 <= eager.min() and eager.max() <= 1.0
  # Independence: the N copies of one patch come out different.
  assert len({eager[i].round(4).tobytes() for i in range(N)}) == N
  np.testing.assert_array_equal(eager, fn(images).numpy())
  other = augment.augment_patches(images, config, tf.constant([21, 9])).numpy()
  assert not np.array_equal(eager, other)


def test_everything_off_is_identity():
  images = _tiled()
  np.testing.assert_array_equal(
      augment.augment_patches(images, ALL_OFF, SEED).numpy(), images.numpy())


@pytest.mark.parametrize("step", sorted(ONE_STEP))
def test_each_step_alone_changes_patches_and_switches_off(step):
  images = _tiled()
  on = dataclasses.replace(ALL_OFF, **ONE_STEP[step])
  out = augment.augment_patches(images, on, SEED).numpy()
  assert out.shape == (N, P, P, 3) and 0.0 <= out.min() and out.max() <= 1.0
  assert np.abs(out - images.numpy()).max() > 1e-3, step
  # Switched off again, the step leaves the patches exactly as they were.
  off = {k: (False if isinstance(v, bool) else 0) for k, v in ONE_STEP[step].items()}
  np.testing.assert_array_equal(
      augment.augment_patches(images, dataclasses.replace(on, **off), SEED).numpy(),
      images.numpy())
  # With the paper's v2 defaults and this step off, the others still change the patches.
  rest = augment.augment_patches(images, dataclasses.replace(AugmentConfig(), **off), SEED)
  assert rest.shape == (N, P, P, 3) and np.abs(rest.numpy() - images.numpy()).max() > 1e-3


def test_step_probabilities_are_per_patch():
  images = tf.constant(np.random.default_rng(1).random((200, 8, 8, 3)), tf.float32)
  config = dataclasses.replace(ALL_OFF, grayscale_p=0.25)
  out = augment.augment_patches(images, config, SEED).numpy()
  grey = np.all(np.ptp(out, axis=-1) < 1e-6, axis=(1, 2)).mean()
  assert 0.15 < grey < 0.35  # supp. A step 4: p = 0.25


def test_augment_image_per_image():
  image = tf.constant(np.random.default_rng(2).random((24, 32, 3)), tf.float32)
  out = augment.augment_image(image, AugmentConfig(), SEED)
  assert out.shape == (24, 32, 3) and out.dtype == tf.float32
  ds = tf.data.Dataset.from_tensors(image).map(
      lambda x: augment.augment_image(x, AugmentConfig(), SEED))
  # Another graph (tf.data), steps as above on [0, 1] pixels: ~84 eps, 0 measured here.
  np.testing.assert_allclose(out.numpy(), next(iter(ds)).numpy(), atol=1e-5)


@pytest.mark.parametrize("fn, shape", [
    (augment.augment_patches, (P, P, 3)),
    (augment.augment_patches, (N, P, P, 1)),
    (augment.augment_image, (2, P, P, 3)),
    (augment.augment_image, (P, P, 4)),
])
def test_bad_shapes_name_the_shape(fn, shape):
  with pytest.raises(ValueError, match=r"\(" + ", ".join(map(str, shape)) + r"\)"):
    fn(tf.zeros(shape), AugmentConfig(), SEED)


def test_config_rejects_bad_values():
  with pytest.raises(ValueError, match="probabilities"):
    AugmentConfig(grayscale_p=1.5)
  with pytest.raises(ValueError, match="0-10"):
    AugmentConfig(randaugment_magnitude=30.0)


def test_test_form_is_the_deterministic_form_of_marks_on_every_patch():
  patches = tf.random.stateless_uniform([2, 3, 16, 16, 3], [5, 6])  # [Gh, Gw, P, P, 3]
  plain = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                        inception_color_p=0.0, grayscale_p=0.0)
  # Steps drawn with p < 1 leave plain patches in the training mix: nothing to match.
  some = dataclasses.replace(plain, color_drop_p=0.5, flip_p=0.5)
  for config in (plain, some):
    np.testing.assert_array_equal(augment.test_form(patches, config), patches)
  marked = dataclasses.replace(plain, color_drop_p=1.0, flip_p=1.0, jitter_size=12)
  # The training order; pixel copies and constants, so exact.
  want = augment.centre_jitter(augment.keep_channel(patches)[..., ::-1, :], 12)
  got = augment.test_form(patches, marked).numpy()
  np.testing.assert_array_equal(got, want)
  assert (got[..., :2, :, :] == 0).all() and (got[..., 2:14, 2:14, 0] == 0.5).all()
