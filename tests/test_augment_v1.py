"""cpc_tf.augment.v1: arXiv v1 4.1 horizontal flip and spatial jitter per patch."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.augment import v1

N, P, J = 8, 16, 12
SEED = tf.constant([4, 2])


def _images():
  return tf.constant(np.random.default_rng(0).random((N, P, P, 3)), tf.float32)


@pytest.mark.parametrize("fn", [lambda x: v1.flip(x, SEED, 0.5),
                                lambda x: v1.jitter(x, SEED, J)], ids=["flip", "jitter"])
def test_eager_and_tf_data_agree(fn):
  images = _images()
  eager = fn(images).numpy()
  ds = tf.data.Dataset.from_tensor_slices(images).batch(N).map(fn)
  # Exact on any CPU: flips and integer-shift (nearest-neighbour) crops copy pixels.
  np.testing.assert_array_equal(eager, next(iter(ds)).numpy())
  assert eager.shape == (N, P, P, 3) and eager.dtype == np.float32
  assert 0.0 <= eager.min() and eager.max() <= 1.0


def test_flip_mirrors_some_patches_and_keeps_the_rest():
  images = _images().numpy()
  out = v1.flip(tf.constant(images), SEED, 0.5).numpy()
  mirrored = [np.array_equal(out[i], images[i, :, ::-1]) for i in range(N)]
  kept = [np.array_equal(out[i], images[i]) for i in range(N)]
  assert all(m or k for m, k in zip(mirrored, kept))
  assert 0 < sum(mirrored) < N


def test_jitter_is_a_random_crop_in_a_centred_zero_frame():
  images = _images().numpy()
  out = v1.jitter(tf.constant(images), SEED, J).numpy()
  top = (P - J) // 2
  frame = np.ones((P, P), bool)
  frame[top:top + J, top:top + J] = False
  assert (out[:, frame] == 0).all()
  offsets = set()
  for i in range(N):
    window = out[i, top:top + J, top:top + J]
    found = [(y, x) for y in range(P - J + 1) for x in range(P - J + 1)
             if np.array_equal(window, images[i, y:y + J, x:x + J])]
    assert found, i  # the window is an exact crop of the input patch
    offsets.add(found[0])
  assert len(offsets) > 1  # drawn per patch


def test_jitter_larger_than_patch_raises():
  with pytest.raises(ValueError, match=r"\(8, 16, 16, 3\)"):
    v1.jitter(_images(), SEED, P + 1)


def test_centre_jitter_keeps_the_centred_window_and_zeroes_its_frame():
  images = _images().numpy()
  grid = images.reshape(2, 4, P, P, 3)  # [Gh, Gw, P, P, 3]: any leading dimensions
  out = v1.centre_jitter(tf.constant(grid), J).numpy()
  top = (P - J) // 2
  frame = np.ones((P, P), bool)
  frame[top:top + J, top:top + J] = False
  assert (out[..., frame, :] == 0).all()
  np.testing.assert_array_equal(out[..., ~frame, :], grid[..., ~frame, :])  # pixel copies
  # The same frame as `jitter`'s, whose every crop offset lands inside it.
  jittered = v1.jitter(tf.constant(images), SEED, J).numpy()
  assert ((jittered != 0) <= ~frame[None, :, :, None]).all()


def test_centre_jitter_size_is_checked():
  with pytest.raises(ValueError, match=r"size 17 must lie in \[1, min\(H, W\)\]"):
    v1.centre_jitter(_images(), P + 1)
