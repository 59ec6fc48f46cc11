"""What a training loop shows while it runs: progress, throughput, projected time, scalars.

Pre-training (`cpc_tf.train`) and every evaluation phase (`cpc_tf.eval.loop`) train
through `cpc_tf.loop.Loop` and report through this module, so both count, time and
project their steps the same way and name their TensorBoard scalars alike.

Glossary: a call is one `Loop.train` call (several steps inside one tf.function); the
first call of a run traces that function, so it is a warm-up call and is not timed.
A run is one invocation: a resumed loop counts and times only the steps it runs itself.

  write_scalar(writer, name, value, step)   one TensorBoard scalar
  phase_line(label, step, steps, loss, validation)    an evaluation phase's line
  projected_line(seconds_per_step, timed, left, label)    the "Projected: ..." line
  Progress(steps, start, ...)    this run's steps: `record` after every call (timing,
      the one projection, metric sums), `show` the Progbar, `write_summaries` the
      scalars since the last write (means, extra values, images/s and patches/s)
"""

from __future__ import annotations

from typing import Callable, Sequence

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

# A run shows its projection once this many steps are timed (fewer are noise).
MIN_TIMED_STEPS = 10
IMAGES_PER_SECOND = "throughput/images_per_second"
PATCHES_PER_SECOND = "throughput/patches_per_second"

# TensorBoard's scalar-plugin tag, written with TF's core `tf.summary.write`:
# `tf.summary.scalar` needs the tensorboard package, which tensorflow-cpu
# does not install.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


def write_scalar(writer: tf.summary.SummaryWriter, name: str, value: float,
                 step: int) -> None:
  """One TensorBoard scalar (float32) at `step` into `writer`."""
  with writer.as_default():
    tf.summary.write(name, tf.constant(value, tf.float32), step=step,
                     metadata=_SCALAR_METADATA)


def phase_line(label: str, step: int, steps: int, loss: float,
               validation: dict[str, float] | None = None) -> str:
  """A phase's line after a call: "<label> step 40/100: loss 0.6931[, validation ...]".

  `validation` {name: value} is shown in its order, "top1" as "top-1".
  """
  line = f"{label} step {step}/{steps}: loss {loss:.4f}"
  if validation:
    line += ", validation " + " ".join(
        f"{k.replace('top', 'top-')} {v:.4f}" for k, v in validation.items())
  return line


def projected_line(seconds_per_step: float, timed: int, left: int, label: str = "") -> str:
  """The wall time the `left` steps take at the measured rate, "[<label>: ]Projected: ..."."""
  prefix = f"{label}: " if label else ""
  return (f"{prefix}Projected: {seconds_per_step:.3g} s per step over {timed} timed steps, "
          f"about {left * seconds_per_step / 60:.1f} min for the {left} steps left")


class Progress:
  """This run's steps from `start` to `steps`: timing, the projection, the bar, scalars.

  Args:
    steps: the step the loop ends at (global).
    start: the step this run starts from (a resumed run counts from there).
    label: prefixes the projection ("frozen (point 0): Projected: ...").
    log: where lines go (`print`, a sweep's printer); None shows nothing.
    bar: a keras Progbar over this run's steps (with `log`): its counter is the
      step itself when starting from 0, so no metric repeats it.
    stateful_metrics: the Progbar shows these as given, not averaged.
    writer: summary writer of `write_summaries`; None writes none.
    batch_size: global batch B, for images/s (0: no throughput scalars).
    patches_per_image: Gh * Gw, for patches/s (0: no patches/s scalar).
    warmup_calls: first calls left untimed (tracing).
    project_at_end: a run that ends with fewer than MIN_TIMED_STEPS timed steps
      projects at its last step all the same (a short pre-training still shows
      its rate).
  """

  def __init__(self, steps: int, start: int = 0, *, label: str = "",
               log: Callable[[str], None] | None = None, bar: bool = False,
               stateful_metrics: Sequence[str] = (),
               writer: tf.summary.SummaryWriter | None = None, batch_size: int = 0,
               patches_per_image: int = 0, warmup_calls: int = 1,
               project_at_end: bool = False):
    self.steps, self.start, self.label, self.log = steps, start, label, log
    self.writer, self.batch_size = writer, batch_size
    self.patches_per_image = patches_per_image
    self.warmup_calls, self.project_at_end = warmup_calls, project_at_end
    self.bar = (keras.utils.Progbar(max(steps - start, 1),
                                    stateful_metrics=list(stateful_metrics))
                if bar and log is not None else None)
    self.calls = 0  # calls that ran at least one step
    self.run_steps = 0  # steps this run ran
    self.timed_steps, self.timed_seconds = 0, 0.0
    self.projected = False
    self._window_steps, self._window_seconds = 0, 0.0  # since the last write_summaries
    self._sums, self._summed = {}, 0

  @property
  def seconds_per_step(self) -> float | None:
    """Mean wall time of a timed step (None before any)."""
    return self.timed_seconds / self.timed_steps if self.timed_steps else None

  @property
  def images_per_second(self) -> float | None:
    """B / seconds_per_step over the timed steps (None without a batch or timing)."""
    if not self.batch_size or not self.timed_seconds:
      return None
    return self.timed_steps * self.batch_size / self.timed_seconds

  def record(self, step: int, done: int, elapsed: float,
             metrics: dict[str, float] | None = None) -> None:
    """After a call that ran `done` steps in `elapsed` s, reaching `step`.

    `metrics` are the call's means; `write_summaries` writes their means over the
    steps since its last write. A call that ran no step (the stop vote) is ignored.
    """
    if done <= 0:
      return
    self.calls += 1
    self.run_steps += done
    if self.calls > self.warmup_calls:
      self.timed_steps += done
      self.timed_seconds += elapsed
      self._window_steps += done
      self._window_seconds += elapsed
      if not self.projected and (self.timed_steps >= MIN_TIMED_STEPS
                                 or (self.project_at_end and step >= self.steps)):
        self.projected = True
        if self.log is not None:
          # The bar's line is still open: the projection starts a line of its own.
          self.log(("\n" if self.bar is not None else "") + projected_line(
              self.seconds_per_step, self.timed_steps, self.steps - step, self.label))
    for name, value in (metrics or {}).items():
      self._sums[name] = self._sums.get(name, 0.0) + value * done
    self._summed += done

  def show(self, step: int, values: Sequence[tuple[str, float]] = ()) -> None:
    """Moves the bar (if any) to `step`, showing `values` [(name, value)]."""
    if self.bar is not None:
      self.bar.update(min(step - self.start, self.bar.target), values=list(values))

  def write_summaries(self, step: int, extra: dict[str, float] | None = None) -> None:
    """Writes the scalars of `step` (if a writer), then starts a new window.

    The recorded metrics' means since the last write, `extra` as given, then
    images/s and patches/s over the timed steps since the last write.
    """
    if self.writer is not None:
      means = {k: v / self._summed for k, v in self._sums.items()}
      for name, value in {**means, **(extra or {})}.items():
        write_scalar(self.writer, name, value, step)
      if self.batch_size and self._window_seconds > 0:
        images = self._window_steps * self.batch_size / self._window_seconds
        write_scalar(self.writer, IMAGES_PER_SECOND, images, step)
        if self.patches_per_image:
          write_scalar(self.writer, PATCHES_PER_SECOND, images * self.patches_per_image,
                       step)
    self._window_steps, self._window_seconds = 0, 0.0
    self._sums, self._summed = {}, 0
