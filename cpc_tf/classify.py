"""The classification protocols: training loop, phases, sweep, results (supp. B, C).

Glossary: B global batch, R replicas in sync, B/R per-replica batch, K classes,
S image side, Gh/Gw patch grid, P patch size.

Entry points (each writes <output_dir>/results.json, see `cpc_tf.results`):
  train_linear(model_dir, LinearEvalConfig, output_dir, strategy)      supp. B
  train_efficient(model_dir, EfficientConfig, output_dir, strategy)    supp. C.2
  train_supervised(SupervisedConfig, output_dir, strategy)             supp. C.1

One training loop serves every phase: `distribute_datasets_from_function` with
the per-replica batch, the loss of each replica divided by R (the optimizers
sum gradients over replicas), an inner `tf.range` loop per tf.function call,
optimizers built in the strategy scope before the first step. Each optimizer
owns a group of variables: Adam on the linear head (supp. B); SGD with
momentum on the ResNet head (supp. C.2 phase 1); SGD on the head plus Adam on
the encoder (phase 2); SGD on the whole ResNet (supp. C.1).

Layout of output_dir (rerunning the same command resumes from it):
  config.json        protocol, encoder and resolved config; a rerun must match
  subset.json        labelled subset and validation ids (efficient, supervised)
  sweep.csv          one line per finished sweep point (validation Top-1 / Top-5)
  point-<i>/<phase>/ sweep point i, phase "frozen", "finetune" or "supervised":
                     checkpoints (ckpt-*: head, or head and encoder when both
                     train, optimizers, step, phase, point), the weights of the
                     best validation (best/), done.json once finished
  linear/            the same for the linear head (no validation, no sweep)
  results.json       the final rows
Only the best sweep point's directory is kept once a point finishes.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import (checkpoints, classifiers, configs, data, encoders, metrics, resnet,
                    results, subsets)
from cpc_tf.configs import (EfficientConfig, EncoderConfig, HParams, LinearEvalConfig,
                            SupervisedConfig, SweepConfig)
from cpc_tf.patches import PRESET_GRIDS
from cpc_tf.train import is_chief

CONFIG_FILE = "config.json"
DONE_FILE = "done.json"
PHASES = {"linear": 0, "frozen": 1, "finetune": 2, "supervised": 3}
# Fields that may change between a run and its resumption: budgets and cadence.
RESUMABLE_CHANGES = ("train_steps", "frozen_steps", "finetune_steps", "eval_every",
                     "eval_batch_size", "patience", "sweep.size")

# (input context, seed) -> per-replica dataset of (inputs, labels [B/R]).
DatasetFn = Callable[[tf.distribute.InputContext, int], tf.data.Dataset]


class Interrupted(Exception):
  """The step budget of this invocation ran out; everything needed to resume is saved."""


class Budget:
  """Training steps this invocation may still run (None: unlimited)."""

  def __init__(self, steps: int | None):
    self.left = steps

  def take(self, wanted: int) -> int:
    return wanted if self.left is None else min(wanted, self.left)

  def spend(self, steps: int) -> None:
    if self.left is not None:
      self.left -= steps


# ----------------------------------------------------------------------------
# Optimizers and the loop

def sgd(hp: HParams, momentum: float) -> keras.optimizers.Optimizer:
  """supp. C.1: SGD at the searched rate and weight decay; norms and biases not decayed."""
  opt = keras.optimizers.SGD(hp.learning_rate, momentum=momentum,
                             weight_decay=hp.weight_decay or None)
  if hp.weight_decay:
    opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
  return opt


@dataclasses.dataclass
class Group:
  """An optimizer and the variables it updates."""

  optimizer: keras.optimizers.Optimizer
  variables: list


class Loop:
  """Distributed training steps and evaluation of one Classifier."""

  def __init__(self, model: classifiers.Classifier, groups: list[Group],
               train_encoder: bool, strategy: tf.distribute.Strategy):
    self.model, self.groups, self.strategy = model, groups, strategy
    self.train_encoder = train_encoder
    with strategy.scope():
      for g in groups:
        # Slots created lazily inside a distributed step would be refused.
        g.optimizer.build(g.variables)
    self._train = tf.function(self._train_loop)
    self._eval = tf.function(self._eval_loop)

  def _replica_step(self, images, labels):
    num_replicas = tf.distribute.get_replica_context().num_replicas_in_sync
    variables = [v for g in self.groups for v in g.variables]
    with tf.GradientTape() as tape:
      logits = self.model(images, training=True, train_encoder=self.train_encoder)
      loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
          labels, logits, from_logits=True))
      # The optimizers SUM replica gradients: / R gives the global-batch mean.
      scaled = loss / tf.cast(num_replicas, tf.float32)
    grads = tape.gradient(scaled, variables)
    start = 0
    for g in self.groups:
      n = len(g.variables)
      g.optimizer.apply(grads[start:start + n], g.variables)
      start += n
    return loss

  def _train_loop(self, iterator, num_steps):
    total = tf.constant(0.0)
    for _ in tf.range(num_steps):
      images, labels = next(iterator)
      loss = self.strategy.run(self._replica_step, args=(images, labels))
      total += self.strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None)
    return total / tf.cast(num_steps, tf.float32)

  def train(self, iterator, num_steps: int) -> float:
    """Runs `num_steps` steps; returns the mean training loss."""
    return float(self._train(iterator, tf.constant(num_steps, tf.int64)))

  def _replica_eval(self, images, labels):
    def counts():
      logits = self.model(images, training=False)
      out = metrics.top_k_counts(logits, labels)
      out["loss"] = tf.reduce_sum(keras.losses.sparse_categorical_crossentropy(
          labels, logits, from_logits=True))
      return out

    def nothing():
      return {k: tf.constant(0.0) for k in ("top1", "top5", "count", "loss")}

    # The last evaluation batch can leave a replica with no image; some kernels
    # (layer norm under oneDNN) fail on an empty batch, so skip it.
    return tf.cond(tf.shape(labels)[0] > 0, counts, nothing)

  def _eval_loop(self, dist):
    totals = {k: tf.constant(0.0) for k in ("top1", "top5", "count", "loss")}
    # Iterating inside tf.function keeps workers in step on uneven last batches.
    for images, labels in dist:
      out = self.strategy.run(self._replica_eval, args=(images, labels))
      totals = {k: totals[k] + self.strategy.reduce(tf.distribute.ReduceOp.SUM, out[k],
                                                    axis=None) for k in totals}
    return totals

  def evaluate(self, dist_dataset) -> dict:
    """{"top1", "top5" (fractions), "loss" (mean), "count"} over one pass."""
    t = {k: float(v) for k, v in self._eval(dist_dataset).items()}
    n = max(t["count"], 1.0)
    return {"top1": t["top1"] / n, "top5": t["top5"] / n, "loss": t["loss"] / n,
            "count": int(t["count"])}


def train_phase(run_dir: str, loop: Loop, train_fn: DatasetFn, steps: int,
                eval_every: int, *, validation=None, patience: int = 0,
                seed: int = 0, phase: str = "frozen", point: int = 0,
                track: dict | None = None, budget: Budget | None = None,
                log: Callable[[str], None] = print) -> dict:
  """Trains (or resumes) one phase in run_dir; returns its done.json dict.

  Every `eval_every` steps: validate (when `validation`, a distributed dataset,
  is given), keep the weights of the best validation Top-1 in run_dir/best,
  checkpoint. `patience` > 0 stops after that many validations without
  improvement (early stopping). At the end the model holds the best weights
  (the last ones without validation). `track` names what the checkpoint holds
  besides the optimizers (default: the whole model). Raises Interrupted when
  `budget` runs out, after saving.

  Under a multi-worker strategy every worker saves (variables may be
  distributed) but only the chief writes run_dir; the others write to a
  scratch directory of their own and read the chief's files, as in pre-training.
  """
  done_path = os.path.join(run_dir, DONE_FILE)
  track = track or {"model": loop.model}
  best_ckpt = tf.train.Checkpoint(**track)
  best_path = os.path.join(run_dir, "best", "ckpt")
  if tf.io.gfile.exists(done_path):
    with tf.io.gfile.GFile(done_path) as f:
      done = json.load(f)
    if validation is not None:
      best_ckpt.read(best_path).expect_partial()
    else:
      tf.train.Checkpoint(**track).read(
          tf.train.latest_checkpoint(run_dir)).expect_partial()
    return done
  budget = budget or Budget(None)
  strategy = loop.strategy
  chief = is_chief(strategy)
  save_dir = run_dir if chief else os.path.join(
      run_dir, f".worker-{strategy.cluster_resolver.task_id}")
  own_best = os.path.join(save_dir, "best", "ckpt")
  with strategy.scope():
    state = {
        "step": tf.Variable(0, dtype=tf.int64, trainable=False),
        "phase": tf.Variable(PHASES[phase], dtype=tf.int64, trainable=False),
        "point": tf.Variable(point, dtype=tf.int64, trainable=False),
        "best_top1": tf.Variable(-1.0, dtype=tf.float64, trainable=False),
        "best_top5": tf.Variable(0.0, dtype=tf.float64, trainable=False),
        "best_step": tf.Variable(0, dtype=tf.int64, trainable=False),
        "evals_since_best": tf.Variable(0, dtype=tf.int64, trainable=False),
    }
  value = lambda name: state[name].numpy()
  optimizers = {f"optimizer{i}": g.optimizer for i, g in enumerate(loop.groups)}
  checkpoint = tf.train.Checkpoint(**track, **optimizers, **state)
  manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=1)
  latest = tf.train.latest_checkpoint(run_dir)
  if latest:
    checkpoint.restore(latest).assert_existing_objects_matched()
    if int(value("phase")) != PHASES[phase] or int(value("point")) != point:
      raise ValueError(f"{run_dir} holds phase {int(value('phase'))} of point "
                       f"{int(value('point'))}, not {phase} of point {point}: the output "
                       "directory was edited by hand; use a fresh --output_dir.")
    if not chief and value("best_top1") >= 0:
      best_ckpt.read(best_path).expect_partial()  # the chief's best so far, then ours
      best_ckpt.write(own_best)
      checkpoint.restore(latest)

  def save():
    manager.save(checkpoint_number=step)
    if not chief:  # keep only the best weights in the scratch directory
      for path in tf.io.gfile.glob(os.path.join(save_dir, "ckpt-*")):
        tf.io.gfile.remove(path)

  step = int(value("step"))
  if step:
    log(f"{phase} (point {point}): resuming at step {step} of {steps}")
  # Input position is not checkpointed (see cpc_tf.train.pretrain): a resumed
  # phase reseeds its pipeline from the step reached.
  iterator = iter(strategy.distribute_datasets_from_function(
      lambda ctx: train_fn(ctx, seed + step)))
  stopped_early = False
  while step < steps:
    n = budget.take(min(eval_every - step % eval_every, steps - step))
    if n <= 0:
      save()
      raise Interrupted(f"stopped at step {step} of {phase} (point {point})")
    loss = loop.train(iterator, n)
    budget.spend(n)
    step += n
    state["step"].assign(step)
    if not np.isfinite(loss):
      raise FloatingPointError(
          f"The training loss became {loss} at step {step} of {phase} (point {point}); "
          f"lower the learning rate. The last checkpoint in {run_dir} is intact.")
    line = f"{phase} (point {point}) step {step}/{steps}: loss {loss:.4f}"
    if step % eval_every == 0 or step == steps:
      if validation is not None:
        m = loop.evaluate(validation)
        line += f", validation top-1 {m['top1']:.4f} top-5 {m['top5']:.4f}"
        if m["top1"] > value("best_top1"):
          state["best_top1"].assign(m["top1"])
          state["best_top5"].assign(m["top5"])
          state["best_step"].assign(step)
          state["evals_since_best"].assign(0)
          best_ckpt.write(own_best)
        else:
          state["evals_since_best"].assign_add(1)
          stopped_early = 0 < patience <= int(value("evals_since_best"))
      save()
    log(line)
    if stopped_early:
      log(f"{phase} (point {point}): early stop, no validation gain in {patience} "
          f"evaluations; best at step {int(value('best_step'))}")
      break
  save()
  done = {"phase": phase, "point": point, "steps": step,
          "best_step": int(value("best_step")) if validation is not None else step,
          "val_top1": float(value("best_top1")) if validation is not None else None,
          "val_top5": float(value("best_top5")) if validation is not None else None,
          "stopped_early": stopped_early}
  if validation is not None:
    best_ckpt.read(own_best).expect_partial()
  if chief:
    with tf.io.gfile.GFile(done_path, "w") as f:
      json.dump(done, f)
  else:
    tf.io.gfile.rmtree(save_dir)
  return done


# ----------------------------------------------------------------------------
# Sweep

def sweep_points(sweep: SweepConfig, given: HParams) -> list[HParams]:
  """supp. C.1's grid: size 1 -> [given]; N > 1 -> N seeded grid points; 0 -> all."""
  if sweep.size == 1:
    return [given]
  grid = [HParams(lr, wd, d, b) for lr, wd, d, b in itertools.product(
      sweep.learning_rates, sweep.weight_decays, sweep.dropouts, sweep.batch_per_replica)]
  if sweep.size == 0:
    return grid
  if sweep.size > len(grid):
    raise ValueError(f"sweep size {sweep.size} exceeds the {len(grid)} grid points; use 0 "
                     "for the whole grid.")
  order = np.random.default_rng(sweep.seed).permutation(len(grid))
  return [grid[i] for i in order[:sweep.size]]


def best_point(rows: list[dict]) -> dict:
  """The sweep row of highest validation Top-1 (the first one on ties)."""
  return max(rows, key=lambda r: (r["val_top1"], -r["point"]))


# ----------------------------------------------------------------------------
# Data

def _train_fn(data_config, mode, batch_per_replica, ids, **kwargs) -> DatasetFn:
  def fn(ctx, seed):
    return data.classification_dataset(
        data_config, mode, batch_per_replica * ctx.num_replicas_in_sync, seed,
        keep_ids=ids, input_context=ctx, **kwargs)
  return fn


def _eval_dataset(strategy, data_config, mode, batch_size, ids=None, **kwargs):
  r = strategy.num_replicas_in_sync
  global_batch = max(r, batch_size // r * r)
  return strategy.distribute_datasets_from_function(
      lambda ctx: data.classification_dataset(
          data_config, mode, global_batch, keep_ids=ids, repeat=False,
          input_context=ctx, **kwargs))


# ----------------------------------------------------------------------------
# Output directory

def _check_run(output_dir: str, protocol: str, source: str, config,
               write: bool = True) -> dict:
  """Writes config.json (if `write`), or refuses an output_dir holding another run."""
  doc = {"protocol": protocol, "encoder": source, "config": configs.to_dict(config)}
  path = os.path.join(output_dir, CONFIG_FILE)
  if write:
    tf.io.gfile.makedirs(output_dir)
  if tf.io.gfile.exists(path):
    with tf.io.gfile.GFile(path) as f:
      saved = json.load(f)
    changes = [c for c in checkpoints.diff(saved, json.loads(json.dumps(doc)))
               if c[0].removeprefix("config.") not in RESUMABLE_CHANGES]
    if changes:
      lines = "\n".join(f"  {k}: saved {a!r}, now {b!r}" for k, a, b in changes)
      raise ValueError(
          f"{output_dir} holds another run:\n{lines}\nUse a new --output_dir, or the "
          f"saved settings (see {path}). Step budgets, eval_every, patience and the "
          "sweep size may change between runs.")
  if write:
    with tf.io.gfile.GFile(path, "w") as f:
      json.dump(doc, f, indent=2, sort_keys=True)
  return doc


def _point_dir(output_dir: str, point: int) -> str:
  return os.path.join(output_dir, f"point-{point}")


def _prune(output_dir: str, keep: int) -> None:
  """Deletes the checkpoints of every sweep point but `keep` (the best so far)."""
  for path in tf.io.gfile.glob(os.path.join(output_dir, "point-*")):
    if os.path.basename(path) != f"point-{keep}":
      tf.io.gfile.rmtree(path)


def _results(chief: bool, output_dir: str, protocol: str, dataset: str, encoder: str,
             rows: list[dict], config) -> dict:
  """The results.json dict, written by the chief only."""
  if not chief:
    return results.document(protocol, dataset, encoder, rows, configs.to_dict(config))
  return results.write_results(os.path.join(output_dir, results.RESULTS_FILE), protocol,
                               dataset, encoder, rows, configs.to_dict(config))


def _printer(verbose: bool, chief: bool):
  def log(line):
    if verbose and chief:
      print(line, flush=True)
  return log


# ----------------------------------------------------------------------------
# supp. B: linear classification

def train_linear(model_dir: str, config: LinearEvalConfig, output_dir: str,
                 strategy: tf.distribute.Strategy | None = None, *,
                 step: int | None = None, stop_after_steps: int | None = None,
                 verbose: bool = True) -> dict:
  """Linear evaluation of the encoder in model_dir (latest checkpoint, or `step`).

  The frozen encoder sees the pre-training patch grid (or `config.grid`);
  training patches get the pre-training augmentation, test patches none
  (single centre crop). Returns the results.json dict (one "CPC v2 linear" row
  on the test split). Raises Interrupted after `stop_after_steps` steps.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = is_chief(strategy)
  log = _printer(verbose, chief)
  with strategy.scope():
    encoder = encoders.load(model_dir, step, config.encoder)
  pre = encoder.pretrain
  if pre is None:
    raise ValueError(
        f"{model_dir} is an exported SavedModel. Linear evaluation cuts images into the "
        "pre-training patch grid and applies the pre-training augmentation (supp. B), "
        "which only a pre-training model_dir records (config.json): pass that --model_dir.")
  grid = pre.model.grid if config.grid == "pretrain" else _preset_grid(config.grid)
  encoders.check_grid(pre, grid)
  _check_run(output_dir, "linear", encoder.source, config, write=chief)
  # supp. B: the pre-training pipeline, including its per-patch augmentation.
  train_data = dataclasses.replace(config.data, pipeline=pre.data.pipeline)
  test_data = dataclasses.replace(train_data, split=config.test_split)
  num_classes = data.num_classes(train_data)
  with strategy.scope():
    model = classifiers.linear_classifier(encoder.model, grid, num_classes)
    groups = [Group(keras.optimizers.Adam(config.learning_rate),  # supp. B
                    model.head.trainable_variables)]
  loop = Loop(model, groups, train_encoder=False, strategy=strategy)
  r = strategy.num_replicas_in_sync
  if config.batch_size % r:
    raise ValueError(f"batch_size={config.batch_size} is the global batch; it must be a "
                     f"multiple of the {r} replicas.")

  def train_fn(ctx, seed):
    return data.classification_dataset(
        train_data, "linear_train", config.batch_size, seed, grid=grid,
        augment=pre.augment, input_context=ctx)

  train_phase(os.path.join(output_dir, "linear"), loop, train_fn, config.train_steps,
              config.eval_every, seed=config.seed, phase="linear",
              track={"head": model.head}, budget=Budget(stop_after_steps), log=log)
  test = loop.evaluate(_eval_dataset(strategy, test_data, "linear_eval",
                                     config.eval_batch_size, grid=grid))
  log(f"test: top-1 {test['top1']:.4f} top-5 {test['top5']:.4f} on {test['count']} images")
  rows = [results.row("CPC v2 linear", 1.0, test["top1"], test["top5"], "test",
                      data.num_examples(train_data, labelled=True))]
  return _results(chief, output_dir, "linear", config.data.source, encoder.source, rows,
                  config)


def _preset_grid(name: str):
  if name not in PRESET_GRIDS:
    raise ValueError(f"grid={name!r}: use 'pretrain' or one of {sorted(PRESET_GRIDS)}.")
  return PRESET_GRIDS[name]


# ----------------------------------------------------------------------------
# supp. C: efficient classification and the supervised baseline

@dataclasses.dataclass
class _Run:
  """What the sweep of one protocol needs, whatever builds the model."""

  protocol: str
  output_dir: str
  subsets: subsets.Subsets
  num_classes: int
  strategy: tf.distribute.Strategy
  image_size: int
  augment: configs.AugmentConfig
  momentum: float
  eval_every: int
  eval_batch_size: int
  seed: int
  budget: Budget
  log: Callable[[str], None]
  chief: bool  # only the chief writes output_dir

  def train_fn(self, hp: HParams) -> DatasetFn:
    return _train_fn(self.subsets.train, "efficient_train", hp.batch_per_replica,
                     self.subsets.train_ids, augment=self.augment,
                     image_size=self.image_size)

  def validation(self):
    return _eval_dataset(self.strategy, self.subsets.validation, "efficient_eval",
                         self.eval_batch_size, self.subsets.validation_ids,
                         image_size=self.image_size)

  def test(self, loop: Loop) -> dict:
    m = loop.evaluate(_eval_dataset(self.strategy, self.subsets.test, "efficient_eval",
                                    self.eval_batch_size, image_size=self.image_size))
    self.log(f"test: top-1 {m['top1']:.4f} top-5 {m['top5']:.4f} on {m['count']} images")
    return m


def _sweep(run: _Run, points: list[HParams], train_point) -> dict:
  """Trains every unfinished point; returns the best sweep.csv row.

  train_point(point, hp) trains one point and returns its done.json dict.
  """
  csv_path = os.path.join(run.output_dir, results.SWEEP_FILE)
  finished = {r["point"]: r for r in results.read_sweep(csv_path)}
  for i, hp in enumerate(points):
    if i in finished:
      continue
    run.log(f"sweep point {i + 1}/{len(points)}: {hp}")
    done = train_point(i, hp)
    entry = {"point": i, **dataclasses.asdict(hp), "val_top1": done["val_top1"],
             "val_top5": done["val_top5"], "best_step": done["best_step"],
             "steps": done["steps"]}
    finished[i] = entry
    if run.chief:
      results.append_sweep(csv_path, entry)
      _prune(run.output_dir, best_point(list(finished.values()))["point"])
  best = best_point([finished[i] for i in range(len(points))])
  run.log(f"best sweep point {best['point']}: validation top-1 {best['val_top1']:.4f}")
  return best


def _hparams(row: dict) -> HParams:
  return HParams(row["learning_rate"], row["weight_decay"], row["dropout"],
                 int(row["batch_per_replica"]))


def _prepare(protocol, config, output_dir, strategy, source, subset_file,
             stop_after_steps, verbose) -> _Run:
  strategy = strategy or tf.distribute.get_strategy()
  chief = is_chief(strategy)
  _check_run(output_dir, protocol, source, config, write=chief)
  subs = subsets.resolve(config.subset, output_dir, subset_file, write=chief)
  return _Run(protocol, output_dir, subs, data.num_classes(subs.train), strategy,
              config.image_size, config.augment, config.momentum, config.eval_every,
              config.eval_batch_size, config.seed, Budget(stop_after_steps),
              _printer(verbose, chief), chief)


def _rows(method: str, run: _Run, val: dict, test: dict) -> list[dict]:
  n, f = len(run.subsets.train_ids), run.subsets.label_fraction
  return [results.row(method, f, val["val_top1"], val["val_top5"], "validation", n),
          results.row(method, f, test["top1"], test["top5"], "test", n)]


def train_efficient(model_dir: str, config: EfficientConfig, output_dir: str,
                    strategy: tf.distribute.Strategy | None = None, *,
                    step: int | None = None, subset_file: str | None = None,
                    stop_after_steps: int | None = None, verbose: bool = True) -> dict:
  """supp. C.2 with the encoder of model_dir (latest checkpoint, or `step`).

  model_dir may also be a SavedModel written by `cpc_tf.export` (no `step`).

  Phase 1 sweeps the classifier's hyper-parameters on the frozen encoder (SGD,
  `frozen_steps` each, best validation step kept); the best point is tested
  ("CPC v2 (frozen)"). Phase 2 (config.finetune) fine-tunes encoder (Adam at
  encoder_learning_rate) and classifier (SGD) from there, early-stopped on
  validation, and is tested ("CPC v2 (fine-tuned)"). Returns the results.json
  dict; rows hold the validation and test accuracy of both phases.
  """
  strategy = strategy or tf.distribute.get_strategy()
  with strategy.scope():
    probe = encoders.load(model_dir, step, config.encoder)
  source = probe.source
  del probe
  run = _prepare("efficient", config, output_dir, strategy, source, subset_file,
                 stop_after_steps, verbose)

  def build(hp):
    with strategy.scope():
      encoder = encoders.load(model_dir, step, config.encoder)
      model = classifiers.efficient_classifier(encoder.model, config.classifier,
                                               run.num_classes, hp.dropout,
                                               config.image_size)
    return model

  def frozen(point, hp, model=None):
    model = model or build(hp)
    with strategy.scope():
      groups = [Group(sgd(hp, config.momentum), model.head.trainable_variables)]
    loop = Loop(model, groups, train_encoder=False, strategy=strategy)
    done = train_phase(os.path.join(_point_dir(output_dir, point), "frozen"), loop,
                       run.train_fn(hp), config.frozen_steps, config.eval_every,
                       validation=run.validation(), seed=config.seed, phase="frozen",
                       point=point, track={"head": model.head}, budget=run.budget,
                       log=run.log)
    return done, loop

  best = _sweep(run, sweep_points(config.sweep, config.hparams),
                lambda i, hp: frozen(i, hp)[0])
  hp = _hparams(best)
  model = build(hp)
  _, loop = frozen(best["point"], hp, model)  # restores the best frozen head
  rows = _rows("CPC v2 (frozen)", run, best, run.test(loop))
  if config.finetune:
    with strategy.scope():
      groups = [Group(sgd(hp, config.momentum), model.head.trainable_variables),
                # supp. C.2: the encoder is fine-tuned with Adam, the head with SGD.
                Group(keras.optimizers.Adam(config.encoder_learning_rate),
                      model.encoder.trainable_variables)]
    loop = Loop(model, groups, train_encoder=True, strategy=strategy)
    done = train_phase(os.path.join(_point_dir(output_dir, best["point"]), "finetune"),
                       loop, run.train_fn(hp), config.finetune_steps, config.eval_every,
                       validation=run.validation(), patience=config.patience,
                       seed=config.seed + 1, phase="finetune", point=best["point"],
                       budget=run.budget, log=run.log)
    rows += _rows("CPC v2 (fine-tuned)", run, done, run.test(loop))
  return _results(run.chief, output_dir, "efficient", config.subset.data.source, source,
                  rows, config)


def train_supervised(config: SupervisedConfig, output_dir: str,
                     strategy: tf.distribute.Strategy | None = None, *,
                     subset_file: str | None = None, stop_after_steps: int | None = None,
                     verbose: bool = True) -> dict:
  """supp. C.1: a ResNet-v2 from pixels with dropout before its last layer, SGD.

  Sweeps like phase 1 of `train_efficient`, tests the best point ("Supervised
  <architecture>"). Returns the results.json dict.
  """
  resnet.spec(config.architecture)  # unknown names fail before any data is read
  run = _prepare("supervised", config, output_dir, strategy, config.architecture,
                 subset_file, stop_after_steps, verbose)
  strategy = run.strategy

  def point_loop(hp):
    with strategy.scope():
      encoder = resnet.build_encoder(EncoderConfig(name=config.architecture,
                                                   norm=config.norm,
                                                   symmetric_padding=False),
                                     name="encoder")
      model = classifiers.supervised_classifier(encoder, run.num_classes, hp.dropout,
                                                config.image_size)
      groups = [Group(sgd(hp, config.momentum), model.trainable_variables)]
    return Loop(model, groups, train_encoder=True, strategy=strategy)

  def train_point(point, hp, loop=None):
    loop = loop or point_loop(hp)
    return train_phase(os.path.join(_point_dir(output_dir, point), "supervised"), loop,
                       run.train_fn(hp), config.train_steps, config.eval_every,
                       validation=run.validation(), seed=config.seed, phase="supervised",
                       point=point, budget=run.budget, log=run.log), loop

  best = _sweep(run, sweep_points(config.sweep, config.hparams),
                lambda i, hp: train_point(i, hp)[0])
  _, loop = train_point(best["point"], _hparams(best))  # restores the best weights
  rows = _rows(f"Supervised {config.architecture}", run, best, run.test(loop))
  return _results(run.chief, output_dir, "supervised", config.subset.data.source,
                  config.architecture, rows, config)
