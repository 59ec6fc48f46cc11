"""cpc_tf.augment.boxes: detection flip / scale move boxes exactly like the pixels."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.augment.boxes import color_drop, flip_with_boxes, scale_with_boxes

H, W = 60, 80


def _rectangle_image(ymin, xmin, ymax, xmax):
  """A filled rectangle (pixel rows ymin..ymax-1, cols xmin..xmax-1) and its box."""
  image = np.zeros((H, W, 3), np.float32)
  image[ymin:ymax, xmin:xmax] = 1.0
  box = np.array([[ymin / H, xmin / W, ymax / H, xmax / W]], np.float32)
  return tf.constant(image), tf.constant(box)


def _box_from_pixels(image):
  """Normalised box of the pixels brighter than 0.75 (fill is 0 or mid-grey)."""
  mask = image[..., 0] > 0.75
  rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
  return np.array([rows[0] / H, cols[0] / W, (rows[-1] + 1) / H, (cols[-1] + 1) / W])


def test_flip_moves_boxes_with_pixels():
  image, box = _rectangle_image(10, 5, 30, 25)
  flips = 0
  for i in range(6):
    out, moved = flip_with_boxes(image, box, tf.constant([i, 0]))
    np.testing.assert_allclose(_box_from_pixels(out.numpy()), moved.numpy()[0], atol=1e-6)
    flips += not np.allclose(moved.numpy(), box.numpy())
  assert 0 < flips < 6


@pytest.mark.parametrize("scale_range", [(0.6, 0.9), (1.2, 1.6)])
def test_scale_moves_boxes_with_pixels(scale_range):
  image, box = _rectangle_image(20, 30, 44, 60)
  for i in range(4):
    out, moved = scale_with_boxes(image, box, tf.constant([i, 3]), scale_range)
    assert out.shape == (H, W, 3)
    assert 0.0 <= out.numpy().min() and out.numpy().max() <= 1.0
    # One pixel of tolerance for the bilinear edge.
    np.testing.assert_allclose(_box_from_pixels(out.numpy()), moved.numpy()[0],
                               atol=1.01 / min(H, W))
    assert not np.allclose(moved.numpy(), box.numpy())


def test_scale_clips_boxes_pushed_outside():
  image, _ = _rectangle_image(0, 0, 6, 6)
  boxes = tf.constant([[0.0, 0.0, 0.1, 0.1], [0.0, 0.0, 1.0, 1.0]])
  _, moved = scale_with_boxes(image, boxes, tf.constant([0, 0]), (2.0, 2.0))
  assert (moved.numpy() >= 0).all() and (moved.numpy() <= 1).all()
  np.testing.assert_allclose(moved.numpy()[1], [0, 0, 1, 1])


def test_box_ops_in_tf_data_and_color_drop_on_a_whole_image():
  image, box = _rectangle_image(10, 10, 20, 30)
  ds = tf.data.Dataset.from_tensors((image, box)).map(
      lambda im, b: scale_with_boxes(*flip_with_boxes(im, b, tf.constant([1, 1])),
                                     tf.constant([2, 2]), (0.8, 1.25)))
  out, moved = next(iter(ds))
  np.testing.assert_allclose(_box_from_pixels(out.numpy()), moved.numpy()[0],
                             atol=1.01 / min(H, W))
  dropped = color_drop(image, tf.constant([1, 2])).numpy()
  assert dropped.shape == (H, W, 3)


def test_bad_boxes_name_the_shape():
  image, _ = _rectangle_image(0, 0, 6, 6)
  with pytest.raises(ValueError, match=r"\(4,\)"):
    flip_with_boxes(image, tf.zeros([4]), tf.constant([0, 0]))
