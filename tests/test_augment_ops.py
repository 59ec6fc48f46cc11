"""cpc_tf.augment.ops: the RandAugment op set, batched with per-patch parameters."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageEnhance, ImageOps

from cpc_tf.augment import ops

N, P = 4, 16


def _images(seed=0, n=N, p=P):
  return tf.constant(np.random.default_rng(seed).random((n, p, p, 3)), tf.float32)


def _eager_and_graph(fn, images):
  """fn on images eagerly, and inside tf.data map with an unknown batch size."""
  ds = tf.data.Dataset.from_tensor_slices(images).batch(images.shape[0]).map(fn)
  assert ds.element_spec.shape[0] is None
  return fn(images).numpy(), next(iter(ds)).numpy()


def test_every_op_eager_and_in_tf_data():
  # One batch holds every op with both signs: one tf.data trace covers them all.
  k = len(ops.OPS)
  images = _images(n=2 * k)
  op = tf.tile(tf.range(k), [2])
  sign = tf.concat([tf.ones([k]), -tf.ones([k])], axis=0)

  def fn(x):
    return ops.apply(x, op, ops.op_values(op, 9.0, sign))

  eager, graph = _eager_and_graph(fn, images)
  assert eager.shape == (2 * k, P, P, 3) and eager.dtype == np.float32
  assert eager.min() >= 0.0 and eager.max() <= 1.0
  # Another graph (tf.data): a few float32 roundings of [0, 1] pixels per op (~8 eps).
  np.testing.assert_allclose(eager, graph, atol=1e-6)
  for i in range(2 * k):
    name = ops.OPS[i % k]
    if name == "identity":
      np.testing.assert_array_equal(eager[i], images.numpy()[i])
    else:
      assert np.abs(eager[i] - images.numpy()[i]).max() > 1e-3, name


def test_mixed_ops_in_one_batch_match_single_op_calls():
  images = _images(n=len(ops.OPS))
  op = tf.range(len(ops.OPS))
  value = ops.op_values(op, 7.0, tf.ones([len(ops.OPS)]))
  mixed = ops.apply(images, op, value).numpy()
  for k in range(len(ops.OPS)):
    alone = ops.apply(images[k:k + 1], op[k:k + 1], value[k:k + 1]).numpy()
    np.testing.assert_allclose(mixed[k], alone[0], atol=1e-6)


def _pil(fn, images):
  u8 = np.round(images * 255).astype(np.uint8)
  return np.stack([np.asarray(fn(Image.fromarray(im))) for im in u8]) / 255.0


@pytest.mark.parametrize("name, ours, theirs", [
    ("autocontrast", ops.autocontrast, ImageOps.autocontrast),
    ("equalize", ops.equalize, ImageOps.equalize),
    ("color", lambda x: ops.color(x, tf.fill([N], 1.6)),
     lambda im: ImageEnhance.Color(im).enhance(1.6)),
    ("contrast", lambda x: ops.contrast(x, tf.fill([N], 0.4)),
     lambda im: ImageEnhance.Contrast(im).enhance(0.4)),
    ("brightness", lambda x: ops.brightness(x, tf.fill([N], 1.3)),
     lambda im: ImageEnhance.Brightness(im).enhance(1.3)),
    ("sharpness", lambda x: ops.sharpness(x, tf.fill([N], 1.8)),
     lambda im: ImageEnhance.Sharpness(im).enhance(1.8)),
    ("solarize", lambda x: ops.solarize(x, tf.fill([N], 0.5)),
     lambda im: ImageOps.solarize(im, 128)),
    ("posterize", lambda x: ops.posterize(x, tf.fill([N], 3.0)),
     lambda im: ImageOps.posterize(im, 3)),
])
def test_colour_ops_match_pil(name, ours, theirs):
  # 8-bit inputs, so both sides see the same levels; PIL rounds, we do not.
  images = np.round(_images(1).numpy() ** 2 * 255) / 255
  got = ours(tf.constant(images, tf.float32)).numpy()
  want = _pil(theirs, images)
  tol = 1.0 / 255 if name in ("equalize", "posterize", "solarize") else 2.5 / 255
  assert np.abs(got - want).max() <= tol + 1e-6, name


def test_translate_moves_content_by_the_documented_fraction():
  images = np.zeros((1, P, P, 3), np.float32)
  images[0, :, 4] = 1.0  # a vertical line at x = 4
  op = tf.constant([ops.OPS.index("translate_x")])
  value = tf.constant([0.25])  # a quarter of the side: 4 px to the right
  out = ops.apply(tf.constant(images), op, value).numpy()
  assert np.argmax(out[0, P // 2, :, 0]) == 8


def test_magnitude_zero_is_identity_for_every_op_but_the_parameterless():
  images = _images()
  for k, name in enumerate(ops.OPS):
    op = tf.fill([N], k)
    out = ops.apply(images, op, ops.op_values(op, 0.0, tf.ones([N]))).numpy()
    if name in ("autocontrast", "equalize", "solarize"):
      continue  # no magnitude (solarize at m = 0 has threshold 1: checked below)
    # Posterize keeps all 8 bits at m = 0, which still rounds to 8-bit levels.
    atol = 0.5 / 255 + 1e-6 if name == "posterize" else 1e-5
    np.testing.assert_allclose(out, images.numpy(), atol=atol, err_msg=name)
  op = tf.fill([N], ops.OPS.index("solarize"))
  out = ops.apply(images, op, ops.op_values(op, 0.0, tf.ones([N]))).numpy()
  np.testing.assert_array_equal(out, images.numpy())


def test_empty_batch():
  images = tf.zeros([0, P, P, 3])
  op = tf.zeros([0], tf.int32)
  assert ops.apply(images, op, tf.zeros([0])).shape == (0, P, P, 3)
