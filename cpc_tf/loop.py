"""The one distributed training step and loop of every protocol (supp. A, B, C, D).

Glossary: B global batch, R replicas in sync, B/R per-replica batch.

Pre-training (`cpc_tf.train`), every evaluation phase and detection
(`cpc_tf.eval.loop`) train through `Loop`, and show its progress, throughput and
projected time through `cpc_tf.progress`. A caller hands over:
  groups      [Group(optimizer, variables, l2=0.0)]: each optimizer updates its
              own variables. A group's l2 > 0 adds l2 * sum(w^2) / 2 over its
              kernels (`decayed`) to the loss.
  loss_fn     batch -> {name: scalar}, in replica context: "loss" is the MEAN
              over this replica's batch, the other names are reported alongside
              (accuracies, per-direction losses). Values are cast to float32.
  after_step  () -> None, cross-replica context, after every step (Polyak
              averaging, a step counter); None for nothing.
  clip_norm   global-norm clip of the summed gradient (supp. A: 0.01); None or
              0 for no clip.
  loss_scale  the loss is multiplied by it before the gradient and the gradient
              divided by it after (mixed precision), 1.0 for none.

One step, in replica context: the loss (plus the L2 terms) divided by R, its
gradient summed over replicas and clipped (`cpc_tf.gradients`), so the update
is the clipped gradient of the global-batch mean as on one device; the L2 term
is the same on every replica, so after the division and the sum its gradient
is l2 * w. Several steps run per tf.function call in an inner `tf.range` loop
(host round trips, decisive on TPU). Optimizers are built in the strategy
scope: slots created inside a distributed step are refused.

`Loop.train(iterator, n, stop_requested)` first takes the workers' stop vote:
a signal reaches one worker, and all must stop at the same step, so when any
worker asks, no worker runs a step. Otherwise it runs up to n steps, fewer
when the loss stops being finite, and returns `Steps`: the metrics' means over
the steps run (with "gradient_norm", the summed gradient's norm before the
clip), the number of steps run and the vote.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Callable

import keras
import tensorflow as tf

from cpc_tf import gradients, stop

LossFn = Callable[[object], dict]


@dataclasses.dataclass
class Group:
  """An optimizer, the variables it updates, and the L2 coefficient of their kernels.

  l2 is TF1's `l2_regularizer(scale)` convention: the loss gains
  l2 * sum(w^2) / 2 (`tf.nn.l2_loss`), so the gradient gains l2 * w; "weight
  decay 1e-5 .. 1e-2" of supp. C.1 is read as this coefficient (SPEC 7).
  """

  optimizer: keras.optimizers.Optimizer
  variables: list
  l2: float = 0.0

  def __post_init__(self):
    if self.l2 < 0:
      raise ValueError(f"Group l2={self.l2}: an L2 coefficient must be >= 0.")


def decayed(variables: list) -> list:
  """The kernels (convolution, dense) among `variables`: what weight decay applies to.

  Norm scales / offsets (gamma, beta) and biases are not decayed, the usual
  convention (decaying a norm's scale only fights the norm); these are the
  same variables the decoupled mode excludes by name (`cpc_tf.eval.sweep`).
  """
  return [v for v in variables if v.name.endswith("kernel")]


def l2_penalty(groups: list[Group]) -> tf.Tensor:
  """sum over groups of l2 * sum(w^2) / 2 over the group's kernels (float32 scalar)."""
  total = tf.constant(0.0)
  for g in groups:
    kernels = decayed(g.variables)
    if g.l2 > 0 and kernels:
      total += g.l2 * tf.add_n([tf.nn.l2_loss(tf.cast(v, tf.float32)) for v in kernels])
  return total


@dataclasses.dataclass(frozen=True)
class Steps:
  """What one `Loop.train` call did."""

  metrics: dict  # {name: float}, means over the steps run (0.0 when none ran)
  done: int  # steps run
  stop: bool  # some worker asked to stop: no step ran

  @property
  def finite(self) -> bool:
    return self.done == 0 or math.isfinite(self.metrics["loss"])


class Loop:
  """Distributed training steps of the variables of `groups` on `loss_fn`."""

  def __init__(self, strategy: tf.distribute.Strategy, groups: list[Group],
               loss_fn: LossFn, names: tuple[str, ...] = ("loss",), *,
               after_step: Callable[[], None] | None = None,
               clip_norm: float | None = None, loss_scale: float = 1.0):
    if "loss" not in names:
      raise ValueError(f"Loop names {names}: loss_fn must return 'loss'.")
    self.strategy, self.groups, self.loss_fn = strategy, groups, loss_fn
    self.names = tuple(names) + ("gradient_norm",)
    self.after_step, self.clip_norm, self.loss_scale = after_step, clip_norm, loss_scale
    with strategy.scope():
      for g in groups:
        # Without this, Keras creates the slots inside the first distributed step,
        # and TF 2.21 refuses variable creation in replica context.
        g.optimizer.build(g.variables)
    self._train = tf.function(self._train_loop)

  @property
  def variables(self) -> list:
    return [v for g in self.groups for v in g.variables]

  def replica_gradients(self, batch) -> tuple[dict, list]:
    """Replica context: (metrics, this replica's gradients of (loss + L2) / R, unscaled)."""
    num_replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    scale = self.loss_scale
    with tf.GradientTape() as tape:
      out = {k: tf.cast(v, tf.float32) for k, v in self.loss_fn(batch).items()}
      objective = out["loss"]
      if any(g.l2 > 0 for g in self.groups):
        objective = objective + l2_penalty(self.groups)
      # Divided by R: the sum over replicas is the gradient of the global-batch mean.
      scaled = objective / num_replicas * scale
    grads = tape.gradient(scaled, self.variables)
    if scale != 1.0:
      grads = [None if g is None else g / scale for g in grads]
    return out, grads

  def replica_step(self, batch) -> dict:
    """Replica context: one step on this replica's batch; returns its metrics."""
    out, grads = self.replica_gradients(batch)
    grads, norm = gradients.sum_and_clip(grads, self.clip_norm)  # supp. A
    start = 0
    for g in self.groups:
      n = len(g.variables)
      gradients.apply(g.optimizer, grads[start:start + n], g.variables)
      start += n
    out["gradient_norm"] = norm  # before the clip: shows how often the clip bites
    return out

  def _train_loop(self, iterator, num_steps, stop_requested):
    strategy = self.strategy
    # The stop vote first, so that every worker runs the same steps.
    votes = strategy.run(lambda s: tf.cast(s, tf.int32), args=(stop_requested,))
    stopping = strategy.reduce(tf.distribute.ReduceOp.SUM, votes, axis=None) > 0
    sums = {k: tf.constant(0.0) for k in self.names}
    done = tf.constant(0, tf.int64)
    for _ in tf.range(tf.where(stopping, tf.constant(0, tf.int64), num_steps)):
      out = strategy.run(self.replica_step, args=(next(iterator),))
      out = {k: strategy.reduce(tf.distribute.ReduceOp.MEAN, out[k], axis=None)
             for k in self.names}
      if self.after_step is not None:
        self.after_step()
      sums = {k: sums[k] + out[k] for k in self.names}
      done += 1
      if not tf.math.is_finite(out["loss"]):
        break
    means = {k: v / tf.cast(tf.maximum(done, 1), tf.float32) for k, v in sums.items()}
    return means, done, stopping

  def train(self, iterator, num_steps: int, stop_requested: bool = False) -> Steps:
    """The stop vote, then up to `num_steps` steps (see the module docstring)."""
    means, done, stopping = self._train(iterator, tf.constant(num_steps, tf.int64),
                                        tf.constant(stop_requested))
    return Steps({k: float(v) for k, v in means.items()}, int(done), bool(stopping))


def non_finite(result: Steps, where: str, kept: str) -> stop.NonFiniteLossError:
  """The error a loop raises when `result`'s loss is not finite; `kept`: what survives."""
  return stop.NonFiniteLossError(
      f"The loss became {result.metrics['loss']} at {where}; stopping without saving: "
      f"{kept}. Lower the learning rate or the clip norm, or check the data, then rerun "
      "the same command to resume from the last checkpoint.")
