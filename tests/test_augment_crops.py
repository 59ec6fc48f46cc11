"""cpc_tf.augment.crops: Inception random-sized crop and the evaluation centre crop."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.augment.crops import center_crop, inception_crop

H, W, S = 48, 64, 24
SEED = tf.constant([5, 6])


def _coordinate_image():
  """Channel 0 = row / H, channel 1 = column / W: a crop reveals where it came from."""
  yy, xx = np.meshgrid(np.arange(H) / H, np.arange(W) / W, indexing="ij")
  return tf.constant(np.stack([yy, xx, np.zeros_like(yy)], -1), tf.float32)


def test_inception_crop_eager_and_tf_data_and_seed():
  image = _coordinate_image()
  fn = lambda x: inception_crop(x, S, SEED)
  eager = fn(image).numpy()
  ds = tf.data.Dataset.from_tensors(image).map(fn)
  # Another graph (tf.data): a 4-term bilinear resize of [0, 1] pixels (~8 eps).
  np.testing.assert_allclose(eager, next(iter(ds)).numpy(), atol=1e-6)
  assert eager.shape == (S, S, 3) and eager.dtype == np.float32
  assert 0.0 <= eager.min() and eager.max() <= 1.0
  assert not np.allclose(eager, inception_crop(image, S, tf.constant([5, 7])).numpy())


def test_inception_crop_respects_area_and_aspect_ranges():
  image = _coordinate_image()
  for i in range(8):
    out = inception_crop(image, S, tf.constant([i, 1]), area_range=(0.2, 0.5),
                         aspect_range=(0.75, 1.33)).numpy()
    height = (out[-1, 0, 0] - out[0, 0, 0]) * H + 1  # rows spanned, in pixels
    width = (out[0, -1, 1] - out[0, 0, 1]) * W + 1
    area = height * width / (H * W)
    assert 0.2 - 0.06 <= area <= 0.5 + 0.06, area
    assert 0.75 - 0.15 <= width / height <= 1.33 + 0.15


def test_center_crop_takes_the_central_fraction():
  image = _coordinate_image()
  out = center_crop(image, H, crop_fraction=1.0).numpy()
  np.testing.assert_allclose(out, image.numpy()[:, (W - H) // 2:(W - H) // 2 + H],
                             atol=1e-6)
  out = center_crop(image, S).numpy()  # 0.875 of 48 = 42 px, centred
  side = int(H * 0.875)
  assert abs(out[0, 0, 0] * H - (H - side) // 2) < 1.0
  assert center_crop(tf.stack([image, image]), S).shape == (2, S, S, 3)


def test_bad_shapes_name_the_shape():
  with pytest.raises(ValueError, match=r"\(1, 48, 64, 3\)"):
    inception_crop(tf.zeros([1, H, W, 3]), S, SEED)
  with pytest.raises(ValueError, match=r"\(48, 64, 2\)"):
    center_crop(tf.zeros([H, W, 2]), S)
