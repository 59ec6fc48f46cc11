"""Top-1 / Top-5 counts against hand-computed cases."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.eval import metrics


def test_hand_computed_top1_top5():
  logits = np.array([
      [0.1, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0],   # label 1: the arg-max -> top-1
      [0.7, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],   # label 2: 5 classes above it -> miss top-5
      [0.7, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6],   # label 3: 4 classes above it -> top-5 only
      [0.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0],   # label 0: tied with 1, 5 above -> miss
  ], np.float32)
  labels = np.array([1, 2, 3, 0])
  np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, 1), [1, 0, 0, 0])
  np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, 5), [1, 0, 1, 0])
  counts = metrics.top_k_counts(logits, labels)
  assert {k: float(v) for k, v in counts.items()} == {"top1": 1.0, "top5": 2.0, "count": 4.0}


def test_ties_count_for_the_label_as_in_top_k():
  logits = tf.zeros([3, 10])
  labels = tf.constant([0, 4, 9])
  np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, 1), [1, 1, 1])
  np.testing.assert_array_equal(
      metrics.top_k_correct(logits, labels, 1),
      tf.cast(tf.math.in_top_k(labels, logits, 1), tf.float32))


def test_matches_in_top_k_on_random_logits():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(64, 20)).astype(np.float32)
  labels = rng.integers(0, 20, 64)
  for k in (1, 5):
    want = tf.cast(tf.math.in_top_k(labels, logits, k), tf.float32)
    np.testing.assert_array_equal(metrics.top_k_correct(logits, labels, k), want)


def test_empty_batch_and_bad_input():
  counts = metrics.top_k_counts(tf.zeros([0, 5]), tf.zeros([0], tf.int64))
  assert float(counts["count"]) == 0 and float(counts["top1"]) == 0
  with pytest.raises(ValueError, match=r"logits \[B, K\]"):
    metrics.top_k_correct(tf.zeros([5]), tf.zeros([5], tf.int64), 1)
  with pytest.raises(ValueError, match="k=0"):
    metrics.top_k_correct(tf.zeros([2, 5]), tf.zeros([2], tf.int64), 0)
