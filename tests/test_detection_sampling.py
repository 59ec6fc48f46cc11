"""Matching and balanced sampling; smooth L1 against its formula."""

import numpy as np
import tensorflow as tf

from cpc_tf.detection import sampling


def test_match_ignores_padding_and_empty_images():
  cands = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
  gt = np.array([[[0, 0, 10, 10], [20, 20, 30, 30]], [[0, 0, 10, 10], [0, 0, 0, 0]]], np.float32)
  valid = np.array([[False, True], [False, False]])
  overlaps, best, index = sampling.match(cands, gt, valid)
  np.testing.assert_allclose(best.numpy(), [[0.0, 1.0], [-1.0, -1.0]])
  assert list(index.numpy()[0]) == [1, 1]
  assert np.all(overlaps.numpy()[:, :, 0] == -1)


def test_sample_balanced_counts():
  tf.random.set_seed(0)
  pos = np.zeros((3, 100), bool)
  pos[0, :40] = True  # more positives than allowed
  pos[1, :5] = True   # fewer: negatives fill the minibatch
  neg = ~pos
  neg[2] = False
  neg[2, :10] = True  # fewer candidates than the minibatch
  take_pos, take_neg = sampling.sample_balanced(pos, neg, 32, 0.5)
  take_pos, take_neg = take_pos.numpy(), take_neg.numpy()
  assert list(take_pos.sum(1)) == [16, 5, 0]
  assert list(take_neg.sum(1)) == [16, 27, 10]
  assert not np.any(take_pos & ~pos) and not np.any(take_neg & ~neg)


def test_sample_balanced_is_uniform():
  tf.random.set_seed(1)
  pos = np.ones((200, 10), bool)
  take, _ = sampling.sample_balanced(pos, np.zeros_like(pos), 2, 1.0)
  freq = take.numpy().mean(0)  # each candidate picked with probability 0.2
  assert np.all(np.abs(freq - 0.2) < 0.1)


def test_smooth_l1():
  x = np.array([-2.0, -0.05, 0.0, 0.05, 0.5], np.float32)
  beta = 0.1
  expected = np.where(np.abs(x) < beta, 0.5 * x * x / beta, np.abs(x) - 0.5 * beta)
  np.testing.assert_allclose(sampling.smooth_l1(x, beta).numpy(), expected, rtol=1e-6)
  np.testing.assert_allclose(sampling.smooth_l1(x, 0.0).numpy(), np.abs(x))
