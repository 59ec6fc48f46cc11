"""CPC pre-training: the distributed step, the loop, checkpoints (supp. A).

Glossary: B global batch, R replicas in sync, B/R per-replica batch,
Gh/Gw patch grid, P patch size.

One code path serves every strategy (default, mirrored, multi-worker, TPU):
  * `distribute_datasets_from_function` builds one input pipeline per worker,
    each yielding the per-replica batch [B/R, Gh, Gw, P, P, 3];
  * each replica's loss (a mean over its own predictions) is divided by R and
    the step sums the gradients over replicas, then clips their global norm
    (`cpc_tf.gradients`), so the update is the clipped gradient of the mean
    over the global batch, as on one device;
  * the InfoNCE negatives are gathered across replicas (the head's job,
    `cross_replica_negatives`), so the loss does not depend on R;
  * several steps run per tf.function call in an inner `tf.range` loop, which
    hides host round trips (decisive on TPU);
  * the optimizer is built inside the strategy scope before the first step:
    creating Adam's slots lazily inside a distributed tf.function fails.
Strategies, the chief and the workers' scratch directories: `cpc_tf.distribute`.

Progress bar, the "Projected: ..." line and the TensorBoard scalars (means since
the last log, images/s and patches/s): `cpc_tf.progress`.

The online kNN probe (`cpc_tf.probe`, config.probe) runs between calls, on
the chief alone, outside the distributed step: every worker ends its calls on
probe boundaries, so all of them still run the same steps per call.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import tensorflow as tf
from absl import logging

from cpc_tf import checkpoints, data, flops, optimization, records, stop
from cpc_tf import loop as loop_lib
from cpc_tf import probe as probe_lib
from cpc_tf import progress as progress_lib
from cpc_tf.averaging import PolyakAverage
from cpc_tf.configs import PretrainConfig
from cpc_tf.distribute import is_chief, set_precision, worker_dir
from cpc_tf.model import build_model

# (input context, data seed) -> per-replica dataset of patches [B/R, Gh, Gw, P, P, 3].
DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]


def total_steps(config: PretrainConfig, num_examples: int | None) -> int:
  """train_steps when set, else ceil(epochs * examples / global batch)."""
  if config.train_steps > 0:
    return config.train_steps
  if not num_examples:
    raise ValueError("train_steps is 0 and the dataset size is unknown: set train_steps.")
  return max(1, math.ceil(config.epochs * num_examples / config.batch_size))


def check_config(config: PretrainConfig, num_replicas: int) -> None:
  """A clear error when the global batch does not split over the replicas."""
  if config.batch_size % num_replicas:
    raise ValueError(
        f"batch_size={config.batch_size} is the global batch and must be a positive "
        f"multiple of the {num_replicas} replicas in sync (each replica gets "
        f"batch_size / {num_replicas} images). Try batch_size="
        f"{max(num_replicas, config.batch_size // num_replicas * num_replicas)}.")


def metric_names(config: PretrainConfig) -> list[str]:
  """Scalars a training step reports (model outputs plus the pre-clip gradient norm)."""
  names = ["loss"]
  for d in config.model.head.directions:
    names += [f"loss/{d}", f"accuracy/{d}"]
  return names + ["gradient_norm"]


class Trainer:
  """Model, Polyak-averaged twin, optimizer and step counter, in a strategy's scope."""

  def __init__(self, config: PretrainConfig, strategy: tf.distribute.Strategy,
               num_steps: int):
    self.config = config
    self.strategy = strategy
    with strategy.scope():
      self.model = build_model(config.model)
      self.averaged_model = build_model(config.model)
      self.optimizer = optimization.make_optimizer(config.optimizer, num_steps)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                              aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
      self.average = PolyakAverage(self.model, self.averaged_model,
                                   config.optimizer.polyak_decay)  # supp. A
    self.average.reset()

    def loss_fn(patches):
      return self.model(patches, training=True,
                        cross_replica_negatives=config.cross_replica_negatives)

    def after_step():
      self.average.update()
      self.step.assign_add(1)

    self.loop = loop_lib.Loop(
        strategy, [loop_lib.Group(self.optimizer, self.model.trainable_variables)],
        loss_fn, tuple(metric_names(config)[:-1]), after_step=after_step,
        clip_norm=config.optimizer.clip_norm,  # supp. A
        loss_scale=optimization.loss_scale(config.precision))

  def learning_rate(self) -> float:
    # A keras.Variable wrapping a distributed variable, or a schedule's tensor.
    return float(tf.convert_to_tensor(self.optimizer.learning_rate))


@dataclasses.dataclass
class Result:
  step: int  # global step reached
  metrics: dict  # means over the last loop call
  trainer: Trainer  # the model, its average and the optimizer, as trained


def _default_dataset_fn(config: PretrainConfig) -> DatasetFn:
  def fn(input_context, seed):
    return data.pretrain_dataset(
        config.data, config.model.grid, config.augment, config.batch_size, seed=seed,
        repeat=True, input_context=input_context)
  return fn


def _num_examples(config: PretrainConfig) -> int | None:
  if config.train_steps > 0:
    return None
  return data.num_examples(config.data)


def pretrain(config: PretrainConfig, model_dir: str,
             strategy: tf.distribute.Strategy | None = None,
             dataset_fn: DatasetFn | None = None,
             num_examples: int | None = None,
             verbose: bool = True,
             stop_grace: float = stop.GRACE_SECONDS) -> Result:
  """Pre-trains (or resumes) a CPC model in model_dir; see the module docstring.

  dataset_fn(input_context, seed) gives the per-replica dataset; by default
  `cpc_tf.data.pretrain_dataset` on config.data. Resumes from the latest
  checkpoint in model_dir (multi-worker: every worker reads the chief's
  model_dir, so it must be on a shared file system such as GCS). Raises
  stop.NonFiniteLossError (without saving) when the loss stops being finite.
  SIGTERM / SIGINT save a checkpoint after the running call and raise
  stop.Stopped (its status 128 + the signal); if that call does
  not return within stop_grace seconds (a stuck input pipeline), the process
  ends without saving (`cpc_tf.stop`). Writes that fail raise records.WriteError.
  """
  run_started = time.perf_counter()
  strategy = strategy or tf.distribute.get_strategy()
  check_config(config, strategy.num_replicas_in_sync)
  chief = is_chief(strategy)
  checkpoints.check_resumable(config, model_dir, write=chief)
  if num_examples is None and dataset_fn is None:
    num_examples = _num_examples(config)
  steps = total_steps(config, num_examples)
  dataset_fn = dataset_fn or _default_dataset_fn(config)
  set_precision(config.precision)
  probing = chief and config.probe.every_steps > 0
  # Drawn before the model is built: a probe asked for where there are no labels
  # fails here, not after the first interval of training.
  probe_started = time.perf_counter()
  labelled = probe_lib.labelled_set(config.probe, config.data) if probing else None
  probe_setup = time.perf_counter() - probe_started

  trainer = Trainer(config, strategy, steps)
  # The Polyak-averaged encoder: the weights checkpoints hand to evaluation (supp. A).
  probe = (probe_lib.Probe(config.probe, labelled, config.model.grid,
                           trainer.averaged_model.encoder, config.augment)
           if probing else None)
  # Non-chief workers must take part in saving (variables may be distributed)
  # but write to a scratch directory of their own.
  save_dir = worker_dir(model_dir, strategy)
  latest = tf.train.latest_checkpoint(model_dir)
  start = int(latest.rsplit("-", 1)[1]) if latest else 0

  # The data position is not checkpointed: tf.distribute iterators cannot be,
  # and a plain tf.data iterator would store the whole shuffle buffer (47 MB
  # of Fashion-MNIST, gigabytes of ImageNet JPEGs) in every checkpoint. A
  # resumed run reseeds its pipeline from the step reached instead, so it
  # draws fresh shuffles and augmentations rather than replaying the first.
  iterator = iter(strategy.distribute_datasets_from_function(
      lambda ctx: dataset_fn(ctx, config.seed + start)))
  checkpoint = tf.train.Checkpoint(
      model=trainer.model,
      averaged_model=trainer.averaged_model,
      optimizer=trainer.optimizer, step=trainer.step)
  manager = tf.train.CheckpointManager(checkpoint, save_dir,
                                       max_to_keep=config.keep_checkpoints,
                                       step_counter=trainer.step)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()

  def save():
    try:
      manager.save(checkpoint_number=trainer.step)
      if not chief:
        tf.io.gfile.rmtree(save_dir)
    except (OSError, tf.errors.OpError) as e:
      steps = checkpoints.checkpoint_steps(model_dir)
      kept = f"ckpt-{steps[-1]} is intact" if steps else "no checkpoint had been saved"
      raise records.WriteError(
          f"saving the checkpoint of step {int(trainer.step.numpy())} in {save_dir} "
          f"failed ({records.reason(e)}); {kept}. Free some space, fix the "
          "permissions or move what is in the way, then rerun the same command to "
          "resume.") from e

  writer = (tf.summary.create_file_writer(model_dir) if chief
            else tf.summary.create_noop_writer())
  step = int(trainer.step.numpy())
  if verbose and chief:
    b, r = config.batch_size, strategy.num_replicas_in_sync
    print(f"{'Resuming at' if step else 'Starting'} step {step} of {steps}: global batch "
          f"{b} over {r} replica(s) ({b // r} each), model_dir={model_dir}", flush=True)
    step_flops = flops.pretrain_cost(config, r).train * r  # analytic, all replicas
    print(f"Cost: {step_flops:.3g} FLOP per step (convolutions and matmuls, forward + "
          f"backward), {step_flops * (steps - step):.3g} FLOP for the {steps - step} steps "
          "to run", flush=True)
  # The bar counts this run's steps (its ETA stays right on resume); the scalars are
  # means since the last log, throughput over the timed calls (the first one traces).
  g = config.model.grid.grid_size
  progress = progress_lib.Progress(
      steps, step, log=_print if verbose and chief else None, bar=True,
      stateful_metrics=["loss", "accuracy", "gradient_norm", "knn_top1"], writer=writer,
      batch_size=config.batch_size, patches_per_image=g * g, project_at_end=True)
  every = config.probe.every_steps  # > 0 on every worker: calls end on its boundaries

  metrics = {}
  last = checkpoints.checkpoint_steps(model_dir)
  note = (f"The last checkpoint (ckpt-{last[-1]} in {model_dir}) is intact: rerun the same "
          "command to resume." if last else "No checkpoint had been saved yet.")
  with stop.StopSignal(stop_grace, note) as stop_signal:
    saved = start if latest else None  # the step of the last checkpoint
    while True:
      # Calls end on log, checkpoint and probe boundaries so all happen on schedule;
      # the last (0 steps) only takes the stop vote.
      n = min(config.steps_per_loop, steps - step,
              config.log_every - step % config.log_every,
              config.checkpoint_every - step % config.checkpoint_every,
              every - step % every if every else steps)
      started = time.perf_counter()
      result = trainer.loop.train(iterator, n, stop_signal.requested)
      elapsed = time.perf_counter() - started
      if result.stop:
        if saved != step:
          save()
        writer.flush()
        logging.warning("Stop requested (%s) at step %d: checkpoint saved.",
                        stop_signal.name, step)
        raise stop.Stopped(f"Preempted at step {step}: checkpoint saved. Rerun the same "
                           "command to continue.", stop_signal.status)
      if n == 0:
        break
      metrics, done = result.metrics, result.done
      step += done
      if not result.finite:
        writer.flush()
        last = tf.train.latest_checkpoint(model_dir)
        kept = (f"the last good checkpoint ({last}) is intact" if last
                else "no checkpoint had been written yet")
        raise loop_lib.non_finite(result, f"step {step}", kept)
      progress.record(step, done, elapsed, metrics)
      if step % config.log_every == 0 or step == steps:
        progress.write_summaries(step, {"learning_rate": trainer.learning_rate()})
      shown = []
      if (probe is not None and not stop_signal.requested
          and (step % every == 0 or step == steps)):
        top1 = probe()
        progress_lib.write_scalar(writer, probe_lib.SCALAR, top1, step)
        shown = [("knn_top1", top1)]
      accuracy = [metrics[f"accuracy/{d}"] for d in config.model.head.directions]
      progress.show(step, [("loss", metrics["loss"]),
                           ("accuracy", sum(accuracy) / len(accuracy)),
                           ("gradient_norm", metrics["gradient_norm"])] + shown)
      if step % config.checkpoint_every == 0 or step == steps:
        save()
        saved = step
        stop_signal.note = (f"The last checkpoint (ckpt-{step} in {model_dir}) is intact: "
                            "rerun the same command to resume.")
  writer.flush()
  if probe is not None and probe.calls and verbose:
    total, cost = time.perf_counter() - run_started, probe.seconds + probe_setup
    print(f"Probe: {probe.calls} kNN probe(s) took {cost:.1f} s with the set-up, "
          f"{100 * cost / total:.1f}% of the run's {total:.0f} s (every {every} steps, "
          f"{config.probe.memory_size} memory + {config.probe.query_size} query images)",
          flush=True)
  return Result(step=step, metrics=metrics, trainer=trainer)


def _print(line: str) -> None:
  print(line, flush=True)
