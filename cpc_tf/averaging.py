"""Polyak (exponential moving) averaging of a model's weights into a twin model.

Supp. A: Polyak averaging with decay 0.9999; the averaged weights are the ones
evaluated and exported. They live in a second model of the same architecture
(not in optimizer slots) so a checkpoint's `averaged_model` entry restores
straight into a fresh `CPCModel`, with no knowledge of the optimizer.

The update runs in cross-replica context through `strategy.extended.update`,
which applies it on every device holding a copy of the variable, so it is the
same under the default, mirrored, multi-worker and TPU strategies.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def _pairs(source: list, target: list, what: str):
  if len(source) != len(target) or any(
      tuple(s.shape) != tuple(t.shape) for s, t in zip(source, target)):
    raise ValueError(
        f"The averaged model's {what} variables do not match the model's: "
        f"{[tuple(v.shape) for v in source]} vs {[tuple(v.shape) for v in target]}. "
        "Build both from the same ModelConfig.")
  return [(s.value if isinstance(s, keras.Variable) else s,
           t.value if isinstance(t, keras.Variable) else t) for s, t in zip(source, target)]


class PolyakAverage:
  """average <- decay * average + (1 - decay) * weights, after every step.

  Trainable variables are averaged; non-trainable ones (e.g. batch-norm
  statistics, when a config uses batch norm) are copied as they are. Create it
  in the scope of the strategy that owns both models' variables.
  """

  def __init__(self, model: keras.Model, averaged: keras.Model, decay: float):
    if not 0.0 <= decay < 1.0:
      raise ValueError(f"polyak_decay={decay}: need 0 <= decay < 1.")
    self.decay = decay
    # Kept: the training loop calls `update` outside `strategy.scope()`.
    self._strategy = tf.distribute.get_strategy()
    self._averaged_pairs = _pairs(model.trainable_variables,
                                  averaged.trainable_variables, "trainable")
    self._copied_pairs = _pairs(model.non_trainable_variables,
                                averaged.non_trainable_variables, "non-trainable")

  def reset(self) -> None:
    """Start the average at the current weights (as tf.train.ExponentialMovingAverage)."""
    for source, target in self._averaged_pairs + self._copied_pairs:
      target.assign(source.read_value())

  def update(self) -> None:
    """One averaging step; call in cross-replica context (e.g. inside tf.function)."""
    strategy = self._strategy
    decay = self.decay

    def average(target, source):
      return target.assign(decay * target + (1.0 - decay) * tf.cast(source, target.dtype))

    def copy(target, source):
      return target.assign(source)

    for source, target in self._averaged_pairs:
      strategy.extended.update(target, average, args=(source,), group=False)
    for source, target in self._copied_pairs:
      strategy.extended.update(target, copy, args=(source,), group=False)
