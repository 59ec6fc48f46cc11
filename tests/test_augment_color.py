"""cpc_tf.augment.color: histogram (step 2), Inception colour (3), grey-scale (4), colour drop."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.augment import color

N, P = 8, 12
SEED = tf.constant([3, 5])


def _images(seed=0, n=N, low=0.0, high=1.0):
  rng = np.random.default_rng(seed)
  return tf.constant(rng.uniform(low, high, (n, P, P, 3)), tf.float32)


FNS = {
    "histogram": lambda x: color.histogram(x, SEED),
    "inception_color": lambda x: color.inception_color(x, SEED, p=0.8),
    "grayscale": lambda x: color.grayscale(x, SEED, p=0.5),
    "color_drop": lambda x: color.color_drop(x, SEED, p=0.7),
}


@pytest.mark.parametrize("name", sorted(FNS))
def test_eager_and_tf_data_agree_and_keep_shape_range_and_seed(name):
  fn = FNS[name]
  images = _images()
  eager = fn(images).numpy()
  ds = tf.data.Dataset.from_tensor_slices(images).batch(N).map(fn)
  # Another graph (tf.data): a few element-wise float32 roundings of [0, 1] pixels (~8 eps).
  np.testing.assert_allclose(eager, next(iter(ds)).numpy(), atol=1e-6)
  assert eager.shape == (N, P, P, 3) and eager.dtype == np.float32
  assert 0.0 <= eager.min() and eager.max() <= 1.0
  np.testing.assert_array_equal(eager, fn(images).numpy())
  assert np.abs(eager - images.numpy()).max() > 1e-3


def test_histogram_curve_is_monotone_with_fixed_ends_and_per_patch():
  ramp = np.linspace(0.0, 1.0, P * P, dtype=np.float32).reshape(1, P, P, 1)
  images = tf.constant(np.tile(ramp, [N, 1, 1, 3]))
  out = color.histogram(images, SEED, knots=4, strength=1.0).numpy()
  flat = out.reshape(N, -1, 3)
  assert (np.diff(flat, axis=1) >= -1e-6).all()  # order of intensities kept
  np.testing.assert_allclose(flat[:, 0], 0.0, atol=1e-6)
  np.testing.assert_allclose(flat[:, -1], 1.0, atol=1e-6)
  assert len({flat[i].round(4).tobytes() for i in range(N)}) == N
  # strength 0: the identity curve, up to the 8-bit lookup table.
  np.testing.assert_allclose(
      color.histogram(images, SEED, strength=0.0).numpy(), images.numpy(),
      atol=0.5 / 255 + 1e-6)


def _only(**ranges):
  kw = dict(brightness=0.0, saturation=0.0, hue=0.0, contrast=0.0)
  kw.update(ranges)
  return kw


def test_inception_brightness_is_a_constant_shift_per_patch():
  images = _images(low=0.3, high=0.7)  # far from the clip
  out = color.inception_color(images, SEED, **_only(brightness=0.1)).numpy()
  shift = (out - images.numpy()).reshape(N, -1)
  np.testing.assert_allclose(shift, shift[:, :1] * np.ones_like(shift), atol=1e-5)
  assert np.ptp(shift[:, 0]) > 1e-3  # patches draw different deltas


def test_inception_contrast_keeps_the_channel_means():
  images = _images(low=0.4, high=0.6)
  out = color.inception_color(images, SEED, **_only(contrast=0.5)).numpy()
  np.testing.assert_allclose(out.mean(axis=(1, 2)), images.numpy().mean(axis=(1, 2)),
                             atol=1e-5)


@pytest.mark.parametrize("which", ["hue", "saturation"])
def test_inception_hue_and_saturation_keep_luma(which):
  images = _images(low=0.35, high=0.65)
  out = color.inception_color(images, SEED, **_only(**{which: 0.2})).numpy()
  luma = np.array([0.299, 0.587, 0.114], np.float32)
  np.testing.assert_allclose(out @ luma, images.numpy() @ luma, atol=1e-4)
  assert np.abs(out - images.numpy()).max() > 1e-3


def test_inception_order_matters_and_p_zero_is_identity():
  images = _images()
  np.testing.assert_array_equal(
      color.inception_color(images, SEED, p=0.0).numpy(), images.numpy())
  # A patch tiled N times gets N random orders: brightness then contrast and
  # the reverse give different results, so outputs spread even with one draw.
  out = color.inception_color(images, SEED, p=1.0).numpy()
  assert len({out[i].round(4).tobytes() for i in range(N)}) == N


def test_grayscale_channels_equal_only_where_applied():
  images = _images(n=64)
  out = color.grayscale(images, SEED, p=0.25).numpy()
  grey = np.all(np.ptp(out, axis=-1) < 1e-6, axis=(1, 2))
  assert 4 <= grey.sum() <= 30  # about 0.25 of 64
  np.testing.assert_array_equal(out[~grey], images.numpy()[~grey])
  np.testing.assert_array_equal(color.grayscale(images, SEED, p=0.0).numpy(),
                                images.numpy())


def test_color_drop_keeps_exactly_one_channel():
  images = _images()
  out = color.color_drop(images, SEED).numpy()
  kept = np.isclose(out, images.numpy(), atol=0).all(axis=(1, 2))  # [N, 3]
  np.testing.assert_array_equal(kept.sum(axis=1), 1)
  dropped = out[~np.broadcast_to(kept[:, None, None, :], out.shape)]
  np.testing.assert_allclose(dropped, 0.5, atol=0.05)
  single = color.color_drop(images[0], SEED).numpy()
  assert single.shape == (P, P, 3)


def test_keep_channel_is_color_drop_without_its_draw_and_noise():
  images = _images()
  out = color.keep_channel(images).numpy()
  np.testing.assert_array_equal(out[..., 1], images.numpy()[..., 1])  # a pixel copy
  assert (out[..., [0, 2]] == 0.5).all()
  # Each patch of color_drop (p = 1) that kept green is the same up to its 1/100 noise.
  dropped = color.color_drop(images, SEED).numpy()
  green = [i for i in range(len(out)) if np.array_equal(dropped[i, ..., 1],
                                                        images.numpy()[i, ..., 1])]
  assert green
  np.testing.assert_allclose(dropped[green], out[green], atol=0.05)
  with pytest.raises(ValueError, match="channel 0, 1 or 2; got shape"):
    color.keep_channel(images, 3)


def test_bad_shapes_name_the_shape():
  with pytest.raises(ValueError, match=r"\(2, 12, 12, 1\)"):
    color.grayscale(tf.zeros([2, 12, 12, 1]), SEED)
  with pytest.raises(ValueError, match=r"\(12, 12\)"):
    color.color_drop(tf.zeros([12, 12]), SEED)
