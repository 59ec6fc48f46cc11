"""Supp. A's Adam and its optional schedule.

Supp. A: Adam (lr 4e-4, beta1 0.8, beta2 0.999, eps 1e-8) with the gradient
clipped to global norm 0.01. The optimizer here is plain Keras Adam: the
training step sums the replica gradients and clips their global norm itself,
in the open (`cpc_tf.gradients`), before handing them over.

mixed_float16: float16 gradients underflow without loss scaling. The step
multiplies the loss by the fixed LOSS_SCALE and divides the summed gradient by
it before the clip (a fixed scale, not Keras' dynamic LossScaleOptimizer, whose
`apply` must run in replica context, where Keras sums gradients over replicas
a second time). An overflow shows as a non-finite loss and stops the run
without saving. bfloat16 has float32's range and needs no scale.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from cpc_tf.configs import OptimizerConfig

LOSS_SCALE = 2.0 ** 15  # mixed_float16 only; Keras' initial dynamic scale


def loss_scale(precision: str) -> float:
  """The factor the loss is multiplied by (and the gradient divided by) before the clip."""
  return LOSS_SCALE if precision == "mixed_float16" else 1.0


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


def make_optimizer(config: OptimizerConfig, total_steps: int) -> keras.optimizers.Adam:
  """Supp. A's Adam (the clip is the training step's, `cpc_tf.gradients`).

  Create it inside the strategy scope, then call `optimizer.build(variables)`
  there too: building lazily inside the first distributed step would create
  variables in replica context, which tf.distribute refuses.
  """
  return keras.optimizers.Adam(
      learning_rate=learning_rate(config, total_steps),
      beta_1=config.beta_1, beta_2=config.beta_2, epsilon=config.epsilon)
