"""Cross-replica gradient sum, global-norm clip and update, written in the open.

Glossary: R replicas in sync; a "replica gradient" is the gradient of this
replica's loss divided by R, so the sum over replicas is the gradient of the
mean loss over the global batch (as on one device).

Both training loops (pre-training, `cpc_tf.train`; evaluation,
`cpc_tf.eval.loop`) take one step the same way, in replica context:

    grads = tape.gradient(loss / R, variables)
    grads, norm = sum_and_clip(grads, clip_norm)   # all-reduce SUM, then clip
    apply(optimizer, grads, variables)             # no second reduction

The clip must see the gradient of the whole global batch (supp. A: global
norm 0.01); Keras' own `global_clipnorm` runs before its cross-replica sum, so
it would clip each replica's share. Keras optimizers sum gradients over
replicas inside `apply` (in replica context; they refuse cross-replica
context under MirroredStrategy), so `apply` hands that sum the finished
gradient on the first replica and zeros on the others: the sum returns it
exactly, for any R. No private Keras hook is overridden, so no Keras rename
can drop the clip; the price is a second all-reduce per step, and the
mirrored-equals-one-device tests pin the total.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def sum_and_clip(grads: list, clip_norm: float | None = None
                 ) -> tuple[list, tf.Tensor]:
  """Replica context: (replica-summed grads clipped to `clip_norm`, norm before the clip).

  grads: one tensor per variable (None for a variable without gradient, kept
  as None). clip_norm None or 0: no clip. Under the default strategy the sum
  is over one replica (the identity).
  """
  if clip_norm is not None and clip_norm < 0:
    raise ValueError(f"clip_norm={clip_norm}: need a positive global norm (or 0 for none).")
  present = [g for g in grads if g is not None]
  summed = tf.distribute.get_replica_context().all_reduce(
      tf.distribute.ReduceOp.SUM, present) if present else []
  if clip_norm:
    summed, norm = tf.clip_by_global_norm(summed, clip_norm)  # supp. A
  else:
    norm = tf.linalg.global_norm(summed)
  it = iter(summed)
  return [None if g is None else next(it) for g in grads], norm


def apply(optimizer: keras.optimizers.Optimizer, grads: list, variables: list) -> None:
  """Replica context: applies already-summed `grads` (the same on every replica), once.

  Build the optimizer on `variables` in the strategy scope first (slots cannot
  be created inside a distributed step).
  """
  context = tf.distribute.get_replica_context()
  if context.num_replicas_in_sync > 1:
    first = tf.equal(context.replica_id_in_sync_group, 0)
    # Keras sums over replicas in `apply`: g + 0 + ... + 0 = g exactly.
    grads = [None if g is None else tf.where(first, g, tf.zeros_like(g)) for g in grads]
  optimizer.apply(grads, variables)
