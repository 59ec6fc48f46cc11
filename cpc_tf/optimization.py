"""Adam with replica-summed, globally clipped gradients, and its schedule (supp. A).

Supp. A: Adam (lr 4e-4, beta1 0.8, beta2 0.999, eps 1e-8) with the gradient
clipped to global norm 0.01. The clip must see the gradient of the whole global
batch: Keras' own `global_clipnorm` runs before the cross-replica sum, so under
a multi-replica strategy it would clip each replica's share separately. Here
the sum happens first, then the clip, in the one hook Keras offers between the
two (`_all_reduce_sum_gradients`, called once per step in replica context).
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from cpc_tf.configs import OptimizerConfig

PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


class ClippedAdam(keras.optimizers.Adam):
  """Adam that sums gradients over replicas, then clips them to `clip_norm`.

  `gradient_norm` holds the global norm of the summed gradient BEFORE clipping
  at the last applied step (the value worth logging: it shows how often and how
  hard supp. A's 0.01 clip bites).
  """

  def __init__(self, clip_norm: float, **kwargs):
    super().__init__(**kwargs)
    if clip_norm <= 0:
      raise ValueError(f"clip_norm={clip_norm}: need a positive global norm.")
    self.clip_norm = clip_norm

  def build(self, variables):
    if self.built:
      return
    super().build(variables)
    # Written identically by every replica (after the all-reduce); keep the first.
    self.gradient_norm = self.add_variable(
        shape=(), name="gradient_norm", aggregation="only_first_replica")

  def _all_reduce_sum_gradients(self, grads_and_vars):
    summed = super()._all_reduce_sum_gradients(grads_and_vars)
    grads = [g for g, _ in summed]
    clipped, norm = tf.clip_by_global_norm(grads, self.clip_norm)  # supp. A
    self.gradient_norm.assign(norm)
    return list(zip(clipped, (v for _, v in summed)))

  def get_config(self):
    return {**super().get_config(), "clip_norm": self.clip_norm}


class WarmupCosine(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `peak` over `warmup_steps`, then constant or cosine to 0.

  Off by default (warmup_steps=0, decay="none"): supp. A states no schedule.
  """

  def __init__(self, peak: float, warmup_steps: int, decay: str, total_steps: int):
    if decay not in ("none", "cosine"):
      raise ValueError(f"decay={decay!r}: choose 'none' or 'cosine'.")
    if warmup_steps < 0:
      raise ValueError(f"warmup_steps={warmup_steps}: need >= 0.")
    self.peak = peak
    self.warmup_steps = warmup_steps
    self.decay = decay
    self.total_steps = total_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    lr = tf.constant(self.peak, tf.float32)
    if self.warmup_steps:
      lr = lr * tf.minimum(1.0, (step + 1.0) / self.warmup_steps)
    if self.decay == "cosine":
      span = max(self.total_steps - self.warmup_steps, 1)
      done = tf.clip_by_value((step - self.warmup_steps) / span, 0.0, 1.0)
      lr = tf.where(step < self.warmup_steps, lr,
                    self.peak * 0.5 * (1.0 + tf.cos(math.pi * done)))
    return lr

  def get_config(self):
    return {"peak": self.peak, "warmup_steps": self.warmup_steps,
            "decay": self.decay, "total_steps": self.total_steps}


def learning_rate(config: OptimizerConfig, total_steps: int):
  """A float (the paper's constant rate) or a schedule when one is configured."""
  if config.warmup_steps == 0 and config.decay == "none":
    return config.learning_rate
  return WarmupCosine(config.learning_rate, config.warmup_steps, config.decay, total_steps)


def make_optimizer(config: OptimizerConfig, total_steps: int,
                   precision: str = "float32") -> keras.optimizers.Optimizer:
  """Supp. A's Adam; wrapped in dynamic loss scaling for mixed_float16.

  Create it inside the strategy scope, then call `optimizer.build(variables)`
  there too: building lazily inside the first distributed step would create
  variables in replica context, which tf.distribute refuses.
  """
  if precision not in PRECISIONS:
    raise ValueError(f"precision={precision!r}: choose one of {PRECISIONS}.")
  adam = ClippedAdam(
      clip_norm=config.clip_norm, learning_rate=learning_rate(config, total_steps),
      beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon)
  if precision == "mixed_float16":
    # float16 gradients underflow without loss scaling; bfloat16 has float32's range.
    return keras.optimizers.LossScaleOptimizer(adam)
  return adam


def inner(optimizer: keras.optimizers.Optimizer) -> ClippedAdam:
  """The ClippedAdam, unwrapping a LossScaleOptimizer."""
  return getattr(optimizer, "inner_optimizer", optimizer)
