"""Top-k accuracy as counts, so that they add up across batches and replicas.

Glossary: B batch, K classes.

A prediction is top-k correct when fewer than k classes score strictly higher
than the true class. Ties therefore count in the label's favour, the
convention of `tf.math.in_top_k`; all-equal logits are top-1 correct.
"""

from __future__ import annotations

import tensorflow as tf


def top_k_correct(logits: tf.Tensor, labels: tf.Tensor, k: int) -> tf.Tensor:
  """logits [B, K], labels [B] int -> [B] float32, 1.0 where the label is in the top k."""
  logits = tf.convert_to_tensor(logits)
  if logits.shape.rank != 2:
    raise ValueError(f"top_k_correct expects logits [B, K], got shape {logits.shape}.")
  if k < 1:
    raise ValueError(f"k={k}: need k >= 1.")
  logits = tf.cast(logits, tf.float32)
  labels = tf.cast(tf.reshape(labels, [-1]), tf.int32)
  true = tf.gather(logits, labels, batch_dims=1)  # [B]
  higher = tf.reduce_sum(tf.cast(logits > true[:, None], tf.int32), axis=1)
  return tf.cast(higher < k, tf.float32)


def top_k_counts(logits: tf.Tensor, labels: tf.Tensor, ks=(1, 5)) -> dict[str, tf.Tensor]:
  """{"top1": correct count, "top5": ..., "count": B} as float32 scalars."""
  out = {f"top{k}": tf.reduce_sum(top_k_correct(logits, labels, k)) for k in ks}
  out["count"] = tf.cast(tf.shape(logits)[0], tf.float32)
  return out

