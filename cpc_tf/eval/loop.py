"""The distributed supervised training loop and its checkpointed phase.

Glossary: B global batch, R replicas in sync, B/R per-replica batch.

Every evaluation protocol trains through this module; a protocol supplies
only what differs (its model, optimizer groups, loss and evaluation counts).

Contract (what a protocol hands over; a detector whose model returns a dict
of losses, trained frozen then fine-tuned, plugs in the same way):
  model       any callable owning variables (keras.Model, tf.Module).
  groups      [Group(optimizer, variables, l2=0.0)]: each optimizer updates
              its own variables, e.g. [SGD on the head] when the backbone is
              frozen, [SGD on the head, Adam at a smaller rate on the
              backbone] when fine-tuning. Create model and optimizers in the
              strategy scope; the Loop builds each optimizer on its variables
              there, before the first step. A group's l2 > 0 adds
              l2 * sum(w^2) / 2 over its kernels (`decayed`) to the loss.
  loss_fn     (model, batch) -> scalar loss, the MEAN over this replica's
              batch, in replica context (e.g. `sum(model(images)["loss/*"])`
              for a detector). The loop adds the groups' L2 terms, divides by
              R, sums the gradients over replicas and clips their global norm
              (`cpc_tf.gradients`, the same helper as pre-training), then
              applies each group. The L2 term is the same on every replica,
              so after the division by R and the sum its gradient is l2 * w.
  count_fn    (model, batch) -> {name: float32 scalar SUM over the batch} for
  count_names every name of `count_names` (with "count", the examples seen), in
              replica context; `Loop.totals` adds them over replicas and batches.
  clip_norm   global-norm clip of the summed gradient; None (no clip) for the
              classification protocols, which state none (supp. B, C).
  Phase       run_dir, name (a key of PHASES: the code each checkpoint stores so
              that a hand-edited directory is refused; a new protocol adds its
              phase names there), steps, eval_every, patience, seed, point.
  validate    () -> {name: float}, called by `run_phase` every eval_every
              steps; `Phase.metrics[0]` is the one maximised (best weights
              kept, early stopping), every name of `Phase.metrics` is saved.

Distribution idioms, each for a reason: `distribute_datasets_from_function`
with the per-replica batch (one input pipeline per worker); an inner
`tf.range` loop per tf.function call (host round trips); the loss divided by R
(the summed gradient is the global-batch mean's); optimizers built in the
strategy scope (slots cannot be created inside a distributed step).

Public API:
  Group(optimizer, variables, l2=0.0)     decayed(variables) -> its kernels
  l2_penalty(groups) -> the summed L2 terms
  Loop(model, groups, loss_fn, strategy, *, count_fn=None, count_names=(),
       clip_norm=None)
    .train(iterator, num_steps) -> mean loss_fn value (without the L2 terms)
    .totals(dist_dataset) -> sums
  classification_loss(train_encoder) -> loss_fn
  classification_counts(model, batch), CLASSIFICATION_COUNTS (its names)
  classification_loop(model, groups, train_encoder, strategy, xla_counts) -> Loop of both
  evaluate(loop, dist_dataset) -> {"top1", "top5", "loss", "count"}
  Phase(run_dir, name, steps, eval_every, ...)    Budget(steps), Interrupted
  run_phase(loop, phase, train_fn, *, validate=None, track=None, budget=None,
            log=print) -> done dict
    built from restore_phase, train_until, keep_if_best, finish_phase; logs a
    `cpc_tf.progress.phase_line` per call and, once 10 steps are timed, one
    "<label>: Projected: ..." line (`cpc_tf.progress.Progress`).
  DatasetFn = (tf.distribute.InputContext, seed) -> per-replica tf.data.Dataset

A phase directory holds checkpoints (ckpt-*: `track`, the optimizers
optimizer0..N, step, phase, point, best_<metric>..., best_step,
evals_since_best), the best validation weights (best/ckpt) and done.json
once finished. Under a multi-worker strategy every worker saves (variables may
be distributed) but only the chief writes run_dir; the others use their own
scratch directory (`cpc_tf.distribute.worker_dir`) and read the chief's files.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import loop as shared
from cpc_tf import progress as progress_lib
from cpc_tf import inference, records, stop
from cpc_tf.distribute import is_chief, worker_dir
from cpc_tf.eval import metrics
from cpc_tf.loop import Group, decayed, l2_penalty  # noqa: F401 (part of this API)

DONE_FILE = "done.json"
# The phase code stored in each checkpoint, so that a hand-edited directory is refused.
PHASES = {"linear": 0, "frozen": 1, "finetune": 2, "supervised": 3,
          "detection_frozen": 4, "detection_finetune": 5}

# (input context, seed) -> per-replica dataset of batches.
DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]
LossFn = Callable[[Any, Any], tf.Tensor]
CountFn = Callable[[Any, Any], dict]


class Budget:
  """Training steps this invocation may still run (None: unlimited)."""

  def __init__(self, steps: int | None):
    self.left = steps

  def take(self, wanted: int) -> int:
    return wanted if self.left is None else min(wanted, self.left)

  def spend(self, steps: int) -> None:
    if self.left is not None:
      self.left -= steps


def epoch_budget(steps: int, epochs: float, eval_every: int, eval_every_epochs: float,
                 num_examples: int, global_batch: int) -> tuple[int, int]:
  """(steps, eval_every) of a phase whose budget may be given in epochs.

  With epochs > 0 the phase runs ceil(epochs * num_examples / global_batch)
  steps, at most `steps`; with eval_every_epochs > 0 it validates every that
  many epochs, at most every `eval_every` steps (each at least 1 step). A
  budget in epochs gives every label fraction the same passes over its
  images, where one fixed step count would cut the larger sets short; the step
  caps bound the cost of the largest sets, and a run that reaches one says so
  (`stopped_early` false in done.json).
  """
  def to_steps(e: float) -> int:
    return max(1, int(np.ceil(e * num_examples / global_batch)))

  if num_examples <= 0 or global_batch <= 0:
    raise ValueError(f"epoch_budget: {num_examples} examples in batches of {global_batch}; "
                     "need both > 0.")
  steps = min(to_steps(epochs), steps) if epochs > 0 else steps
  if eval_every_epochs > 0:
    eval_every = min(to_steps(eval_every_epochs), eval_every)
  return steps, min(eval_every, steps)


# ----------------------------------------------------------------------------
# The loop

class Loop:
  """Distributed training steps (`cpc_tf.loop.Loop`) and evaluation passes of one model."""

  def __init__(self, model, groups: list[Group], loss_fn: LossFn,
               strategy: tf.distribute.Strategy, *, count_fn: CountFn | None = None,
               count_names: tuple[str, ...] = (), clip_norm: float | None = None,
               xla_counts: bool = False):
    self.model, self.groups, self.strategy = model, groups, strategy
    self.loss_fn = loss_fn
    self.count_fn, self.count_names = count_fn, tuple(count_names)
    self.steps = shared.Loop(strategy, groups, lambda batch: {"loss": loss_fn(model, batch)},
                             clip_norm=clip_norm)
    # One replica's counts of one batch: the evaluation's forward pass (cpc_tf/inference.py).
    self._counts = inference.forward(self._replica_counts_of, xla=xla_counts)
    self._totals = tf.function(self._totals_loop)

  def train(self, iterator, num_steps: int, stop_requested: bool = False) -> shared.Steps:
    """The workers' stop vote, then up to `num_steps` steps (`cpc_tf.loop.Loop.train`).

    Its "loss" is the mean loss_fn value, without the groups' L2 terms: the figure
    stays comparable with the evaluation loss (on a wide head the penalty would
    dominate it).
    """
    return self.steps.train(iterator, num_steps, stop_requested)

  def _zeros(self):
    return {k: tf.constant(0.0) for k in self.count_names}

  def _replica_counts_of(self, batch):
    out = self.count_fn(self.model, batch)
    return {k: tf.cast(out[k], tf.float32) for k in self.count_names}

  def _replica_counts(self, batch):
    # The last evaluation batch can leave a replica with no example; some kernels
    # (layer norm under oneDNN) fail on an empty batch, so skip it.
    return tf.cond(tf.shape(tf.nest.flatten(batch)[0])[0] > 0,
                   lambda: self._counts(batch), self._zeros)

  def _totals_loop(self, dist):
    totals = self._zeros()
    # Iterating inside tf.function keeps workers in step on uneven last batches.
    for batch in dist:
      out = self.strategy.run(self._replica_counts, args=(batch,))
      summed = {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in out.items()}
      totals = {k: totals[k] + summed[k] for k in totals}
    return totals

  def totals(self, dist_dataset) -> dict[str, float]:
    """count_fn's sums over one pass of a distributed dataset."""
    if self.count_fn is None or "count" not in self.count_names:
      raise ValueError("Evaluation needs a Loop with count_fn and count_names "
                       "(including 'count').")
    return {k: float(v) for k, v in self._totals(dist_dataset).items()}


# ----------------------------------------------------------------------------
# Classification: loss and counts of a Classifier (images or patches -> logits)

def classification_loss(train_encoder: bool) -> LossFn:
  """(model, (inputs, labels [B/R])) -> mean cross-entropy of the logits."""
  def loss_fn(model, batch):
    inputs, labels = batch
    logits = model(inputs, training=True, train_encoder=train_encoder)
    return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
        labels, logits, from_logits=True))
  return loss_fn


CLASSIFICATION_COUNTS = ("top1", "top5", "count", "loss")


def classification_counts(model, batch) -> dict:
  """(model, (inputs, labels)) -> summed top-1 / top-5 hits, loss and count."""
  inputs, labels = batch
  logits = model(inputs, training=False)
  out = metrics.top_k_counts(logits, labels)
  out["loss"] = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
      labels, logits, from_logits=True))
  return out


def classification_loop(model, groups: list[Group], train_encoder: bool,
                        strategy: tf.distribute.Strategy, xla_counts: bool = False) -> Loop:
  """A Loop training a Classifier with cross-entropy and counting top-k hits.

  xla_counts: the evaluation passes compiled by XLA (cpc_tf/inference.py).
  """
  return Loop(model, groups, classification_loss(train_encoder), strategy,
              count_fn=classification_counts, count_names=CLASSIFICATION_COUNTS,
              xla_counts=xla_counts)


def evaluate(loop: Loop, dist_dataset) -> dict:
  """{"top1", "top5" (fractions), "loss" (mean), "count"} over one pass."""
  t = loop.totals(dist_dataset)
  n = max(t["count"], 1.0)
  return {"top1": t["top1"] / n, "top5": t["top5"] / n, "loss": t["loss"] / n,
          "count": int(t["count"])}


# ----------------------------------------------------------------------------
# The checkpointed phase

@dataclasses.dataclass(frozen=True)
class Phase:
  """One resumable training phase in its own directory."""

  run_dir: str
  name: str  # a key of PHASES
  steps: int
  eval_every: int  # validate (if any) and checkpoint every N steps
  patience: int = 0  # > 0: stop after N validations without improvement
  seed: int = 0  # input pipeline; a resumed phase reseeds from the step reached
  point: int = 0  # sweep point
  metrics: tuple[str, ...] = ("top1", "top5")  # validation values kept; the first is maximised

  @property
  def label(self) -> str:
    return f"{self.name} (point {self.point})"


@dataclasses.dataclass
class _State:
  """What a phase checkpoints besides the model and optimizers."""

  variables: dict
  checkpoint: tf.train.Checkpoint
  manager: tf.train.CheckpointManager
  best: tf.train.Checkpoint  # the tracked weights alone
  save_dir: str  # run_dir, or this worker's scratch directory
  chief: bool

  def value(self, name):
    return self.variables[name].numpy()


def best_path(directory: str) -> str:
  """Where a phase directory keeps its best validation weights (`track` alone)."""
  return os.path.join(directory, "best", "ckpt")


def restore_phase(loop: Loop, phase: Phase, track: dict) -> _State:
  """Builds the phase's checkpoint and restores the latest one of run_dir, if any."""
  strategy = loop.strategy
  with strategy.scope():
    variables = {
        "step": tf.Variable(0, dtype=tf.int64, trainable=False),
        "phase": tf.Variable(PHASES[phase.name], dtype=tf.int64, trainable=False),
        "point": tf.Variable(phase.point, dtype=tf.int64, trainable=False),
        "best_step": tf.Variable(0, dtype=tf.int64, trainable=False),
        "evals_since_best": tf.Variable(0, dtype=tf.int64, trainable=False),
    }
    for i, name in enumerate(phase.metrics):
      variables[f"best_{name}"] = tf.Variable(-1.0 if i == 0 else 0.0, dtype=tf.float64,
                                              trainable=False)
  optimizers = {f"optimizer{i}": g.optimizer for i, g in enumerate(loop.groups)}
  checkpoint = tf.train.Checkpoint(**track, **optimizers, **variables)
  save_dir = worker_dir(phase.run_dir, strategy)
  state = _State(variables, checkpoint,
                 tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=1),
                 tf.train.Checkpoint(**track), save_dir, is_chief(strategy))
  latest = tf.train.latest_checkpoint(phase.run_dir)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()
    if (int(state.value("phase")) != PHASES[phase.name]
        or int(state.value("point")) != phase.point):
      raise ValueError(
          f"{phase.run_dir} holds phase {int(state.value('phase'))} of point "
          f"{int(state.value('point'))}, not {phase.name} of point {phase.point}: the "
          "output directory was edited by hand; use a fresh --output_dir.")
    if not state.chief and state.value(f"best_{phase.metrics[0]}") >= 0:
      # The chief's best so far becomes this worker's, then its own checkpoint again.
      state.best.read(best_path(phase.run_dir)).expect_partial()
      state.best.write(best_path(save_dir))
      checkpoint.restore(latest)
  return state


def save_phase(state: _State, step: int) -> None:
  try:
    state.manager.save(checkpoint_number=step)
  except (OSError, tf.errors.OpError) as e:
    raise records.WriteError(
        f"saving the checkpoint of step {step} in {state.save_dir} failed "
        f"({records.reason(e)}); the previous checkpoint is intact. Free some space, "
        "fix the permissions or move what is in the way, then rerun the same command to "
        "resume.") from e
  if not state.chief:
    for path in tf.io.gfile.glob(os.path.join(state.save_dir, "ckpt-*")):
      tf.io.gfile.remove(path)  # a worker keeps only its best weights


def keep_if_best(state: _State, phase: Phase, step: int, values: dict) -> bool:
  """Records a validation; keeps the weights if best. Returns whether to stop early."""
  key = phase.metrics[0]
  if values[key] > state.value(f"best_{key}"):
    for name in phase.metrics:
      state.variables[f"best_{name}"].assign(values[name])
    state.variables["best_step"].assign(step)
    state.variables["evals_since_best"].assign(0)
    state.best.write(best_path(state.save_dir))
    return False
  state.variables["evals_since_best"].assign_add(1)
  return 0 < phase.patience <= int(state.value("evals_since_best"))


def train_until(loop: Loop, phase: Phase, state: _State, train_fn: DatasetFn, *,
                validate: Callable[[], dict] | None, budget: Budget,
                log: Callable[[str], None]) -> bool:
  """Trains from the saved step to phase.steps; returns whether it stopped early."""
  step = int(state.value("step"))
  if step:
    log(f"{phase.label}: resuming at step {step} of {phase.steps}")
  # Input position is not checkpointed (see cpc_tf.train.pretrain): a resumed
  # phase reseeds its pipeline from the step reached.
  iterator = iter(loop.strategy.distribute_datasets_from_function(
      lambda ctx: train_fn(ctx, phase.seed + step)))
  note = (f"The last checkpoint in {phase.run_dir} is intact: rerun the same command to "
          "resume.")
  with stop.StopSignal(note=note) as stop_signal:
    return _train_steps(loop, phase, state, iterator, step, stop_signal,
                        validate=validate, budget=budget, log=log)


def _train_steps(loop, phase, state, iterator, step, stop_signal, *, validate, budget,
                 log) -> bool:
  saved = step
  # Times the training calls alone (not validation), the first untimed (it traces).
  progress = progress_lib.Progress(phase.steps, step, label=phase.label, log=log)
  while True:
    # The last call (0 steps) only takes the stop vote, so that a signal during
    # the phase's last steps stops the run here, not in the next phase.
    n = budget.take(min(phase.eval_every - step % phase.eval_every, phase.steps - step))
    started = time.perf_counter()
    result = loop.train(iterator, max(n, 0), stop_signal.requested)
    elapsed = time.perf_counter() - started
    if result.stop:  # SIGTERM / Ctrl-C on some worker: save, then stop like a preemption
      if saved != step:
        save_phase(state, step)
      raise stop.Stopped(f"Stopped: {stop_signal.name} at step {step} of {phase.label}, "
                         "checkpoint saved. Rerun the same command to continue.",
                         stop_signal.status)
    if step >= phase.steps:
      return False
    if n <= 0:
      save_phase(state, step)
      raise stop.Interrupted(f"Interrupted: stopped at step {step} of {phase.label}. "
                             "Rerun the same command to continue.")
    budget.spend(result.done)
    step += result.done
    state.variables["step"].assign(step)
    if not result.finite:
      raise shared.non_finite(result, f"step {step} of {phase.label}",
                              f"the last checkpoint in {phase.run_dir} is intact")
    progress.record(step, result.done, elapsed)
    shown = None
    early = False
    if step % phase.eval_every == 0 or step == phase.steps:
      if validate is not None:
        values = validate()
        shown = {k: values[k] for k in phase.metrics}
        early = keep_if_best(state, phase, step, values)
      save_phase(state, step)
      saved = step
    log(progress_lib.phase_line(phase.label, step, phase.steps, result.metrics["loss"],
                                shown))
    if early:
      log(f"{phase.label}: early stop, no validation gain in {phase.patience} "
          f"evaluations; best at step {int(state.value('best_step'))}")
      return True


def finish_phase(phase: Phase, state: _State, stopped_early: bool,
                 validated: bool) -> dict:
  """Saves, loads the best weights, writes done.json (chief); returns its dict."""
  step = int(state.value("step"))
  save_phase(state, step)
  done = {"phase": phase.name, "point": phase.point, "steps": step,
          "best_step": int(state.value("best_step")) if validated else step}
  for name in phase.metrics:
    done[f"val_{name}"] = float(state.value(f"best_{name}")) if validated else None
  done["stopped_early"] = stopped_early
  if validated:
    state.best.read(best_path(state.save_dir)).expect_partial()
  if state.chief:
    records.write_json(os.path.join(phase.run_dir, DONE_FILE), done)
  else:
    tf.io.gfile.rmtree(state.save_dir)
  return done


def run_phase(loop: Loop, phase: Phase, train_fn: DatasetFn, *,
              validate: Callable[[], dict] | None = None, track: dict | None = None,
              budget: Budget | None = None, log: Callable[[str], None] = print) -> dict:
  """Trains (or resumes) one phase in phase.run_dir; returns its done.json dict.

  Every eval_every steps: validate (if given), keep the weights of the best
  `phase.metrics[0]`, checkpoint; `phase.patience` > 0 stops early. At the end
  the model holds the best weights (the last ones without validation). `track`
  names what the checkpoint holds besides the optimizers (default: the whole
  model). Raises stop.Interrupted when `budget` runs out and stop.Stopped on SIGTERM /
  SIGINT (on any worker), both after saving. A finished
  phase (done.json) only restores its weights.
  """
  track = track or {"model": loop.model}
  done_path = os.path.join(phase.run_dir, DONE_FILE)
  if tf.io.gfile.exists(done_path):
    done = records.read_json(done_path, "Delete it to run the phase's last steps again.")
    weights = (best_path(phase.run_dir) if validate is not None
               else tf.train.latest_checkpoint(phase.run_dir))
    tf.train.Checkpoint(**track).read(weights).expect_partial()
    return done
  state = restore_phase(loop, phase, track)
  stopped = train_until(loop, phase, state, train_fn, validate=validate,
                        budget=budget or Budget(None), log=log)
  return finish_phase(phase, state, stopped, validate is not None)
