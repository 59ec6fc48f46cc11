"""The supp. C.1 hyper-parameter sweep and the few-label run it belongs to.

Glossary: B/R per-replica batch, S image side, K classes.

Layout of an output_dir (rerunning the same command resumes from it):
  config.json        protocol, encoder and resolved config; a rerun must match
  subset.json        labelled subset and validation ids (`cpc_tf.eval.subsets`)
  sweep.csv          one line per finished sweep point (validation Top-1 / Top-5)
  point-<i>/<phase>/ sweep point i, phase "frozen", "finetune" or "supervised":
                     a `cpc_tf.eval.loop` phase directory
  results.json       the final rows (`cpc_tf.eval.results`)
Only the best sweep point's directory is kept once a point finishes.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import checkpoints, configs, data
from cpc_tf.configs import HParams, SweepConfig
from cpc_tf.distribute import is_chief
from cpc_tf.eval import loop as loop_lib
from cpc_tf.eval import held_out, results, subsets

# Fields that may change between a run and its resumption: budgets and cadence.
RESUMABLE_CHANGES = ("train_steps", "frozen_steps", "finetune_steps", "eval_every",
                     "eval_batch_size", "patience", "sweep.size", "train_epochs",
                     "frozen_epochs", "finetune_epochs", "eval_every_epochs")
# Read by phase 2 alone: free to differ in a run without it (finetune=False).
PHASE2_FIELDS = ("encoder_learning_rate", "encoder_beta_1", "encoder_beta_2",
                 "encoder_epsilon")
# What a config.json written before these fields existed trained with: Keras'
# decoupled decay, Keras' default Adam, 8%-area crops and batch-norm momentum. Such a run
# resumes only with them.
IMPLIED_BEFORE_FIELDS = {"config.weight_decay_mode": "decoupled",
                         "config.encoder_beta_1": 0.9, "config.encoder_beta_2": 0.999,
                         "config.encoder_epsilon": 1e-7, "config.crop_min_area": 0.08,
                         "config.bn_momentum": 0.99, "config.classifier.bn_momentum": 0.99,
                         "config.match_test_patches": False,
                         # detection: phase 2 ran the backbone in training mode
                         "config.backbone_batch_stats": True}
# Not decayed in the decoupled mode, by name: the variables `loop.decayed` leaves out.
NOT_DECAYED = ("bias", "gamma", "beta")


def sgd(hp: HParams, momentum: float, mode: str, variables: list) -> loop_lib.Group:
  """supp. C.1: SGD at the searched rate and weight decay on `variables`.

  mode (configs.WEIGHT_DECAY_MODES): "l2" puts hp.weight_decay into the loss as
  TF1's l2_regularizer did (gradient + wd * w on the kernels, `loop.Group.l2`);
  "decoupled" is Keras' weight_decay (w -= lr * wd * w before the momentum
  step). Either way only kernels decay, never norms or biases.
  """
  if mode not in configs.WEIGHT_DECAY_MODES:
    raise ValueError(f"weight_decay_mode={mode!r}; choose one of "
                     f"{configs.WEIGHT_DECAY_MODES}.")
  decoupled = mode == "decoupled" and hp.weight_decay > 0
  opt = keras.optimizers.SGD(hp.learning_rate, momentum=momentum,
                             weight_decay=hp.weight_decay if decoupled else None)
  if decoupled:
    opt.exclude_from_weight_decay(var_names=list(NOT_DECAYED))
  return loop_lib.Group(opt, variables, l2=hp.weight_decay if mode == "l2" else 0.0)


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


def tested_point(finished: dict[int, dict], num_points: int) -> dict:
  """The row a sweep of `num_points` points tests: the best of points 0..num_points-1.

  finished maps point -> sweep.csv row; a point missing from it raises KeyError.
  """
  return best_point([finished[i] for i in range(num_points)])


def hparams(row: dict) -> HParams:
  """The HParams of a sweep.csv row."""
  return HParams(row["learning_rate"], row["weight_decay"], row["dropout"],
                 int(row["batch_per_replica"]))


# ----------------------------------------------------------------------------
# Output directory and data, shared by every classification protocol

def check_run(output_dir: str, protocol: str, source: str, config, write: bool = True
              ) -> dict:
  """Writes config.json (if `write`), or refuses an output_dir holding another run.

  A config.json of an older version lacks newer fields; it is read as what that
  version did (IMPLIED_BEFORE_FIELDS), so resuming it needs those settings.
  """
  doc = {"protocol": protocol, "encoder": source, "config": configs.to_dict(config)}
  free = RESUMABLE_CHANGES
  if not getattr(config, "finetune", True):
    free += PHASE2_FIELDS
  checkpoints.guard_config(
      output_dir, doc, lambda name: name.removeprefix("config.") in free,
      write=write, what="another run", implied=IMPLIED_BEFORE_FIELDS,
      hint="Use a new --output_dir, or the saved settings. Step budgets, eval_every, "
           "patience and the sweep size may change between runs; a value marked "
           "implied is what the older version that wrote the file did: pass it to "
           "resume that run (e.g. --weight_decay_mode=decoupled --encoder_beta_1=0.9 "
           "--encoder_epsilon=1e-7)")
  return doc


def printer(verbose: bool, chief: bool) -> Callable[[str], None]:
  def log(line):
    if verbose and chief:
      print(line, flush=True)
  return log


def eval_dataset(strategy, data_config, mode, batch_size, ids=None, **kwargs):
  """One distributed pass over a split (the global batch rounded to the replicas)."""
  r = strategy.num_replicas_in_sync
  global_batch = max(r, batch_size // r * r)
  return strategy.distribute_datasets_from_function(
      lambda ctx: data.EVAL_DATASETS[mode](
          data_config, global_batch, keep_ids=ids, input_context=ctx, **kwargs))


def write_results(chief: bool, output_dir: str, protocol: str, dataset: str, encoder: str,
                  rows: list[dict], config, test: dict | None = None) -> dict:
  """The results.json dict, written by the chief only (`test`: held_out.summary)."""
  if not chief:
    return results.document(protocol, dataset, encoder, rows, configs.to_dict(config),
                            test)
  return results.write_results(os.path.join(output_dir, results.RESULTS_FILE), protocol,
                               dataset, encoder, rows, configs.to_dict(config), test)


# ----------------------------------------------------------------------------
# The few-label run of supp. C (efficient classification, supervised baseline)

def point_dir(output_dir: str, point: int, phase: str) -> str:
  """The phase directory of sweep point `point` (see the layout above)."""
  return os.path.join(output_dir, f"point-{point}", phase)


@dataclasses.dataclass
class FewLabels:
  """A resolved few-label run: its subsets, data settings and output directory."""

  output_dir: str
  subsets: subsets.Subsets
  strategy: tf.distribute.Strategy
  image_size: int
  crop_min_area: float
  augment: configs.AugmentConfig
  eval_batch_size: int
  budget: loop_lib.Budget
  log: Callable[[str], None]
  chief: bool  # only the chief writes output_dir
  test_summary: dict | None = None  # results.json "test", set by `test`

  @property
  def num_classes(self) -> int:
    return data.num_classes(self.subsets.train)

  def point_dir(self, point: int, phase: str) -> str:
    return point_dir(self.output_dir, point, phase)

  def budget_steps(self, steps: int, epochs: float, eval_every: int,
                   eval_every_epochs: float, hp: HParams) -> tuple[int, int]:
    """(steps, eval_every) of a phase: epochs of the labelled subset when given."""
    return loop_lib.epoch_budget(
        steps, epochs, eval_every, eval_every_epochs, len(self.subsets.train_ids),
        hp.batch_per_replica * self.strategy.num_replicas_in_sync)

  def train_fn(self, hp: HParams) -> loop_lib.DatasetFn:
    def fn(ctx, seed):
      return data.efficient_train_dataset(
          self.subsets.train,
          hp.batch_per_replica * ctx.num_replicas_in_sync, seed,
          keep_ids=self.subsets.train_ids, input_context=ctx, augment=self.augment,
          image_size=self.image_size, crop_min_area=self.crop_min_area)
    return fn

  def validate(self, loop: loop_lib.Loop) -> Callable[[], dict]:
    dist = eval_dataset(self.strategy, self.subsets.validation, "efficient_eval",
                        self.eval_batch_size, self.subsets.validation_ids,
                        image_size=self.image_size)
    return lambda: loop_lib.evaluate(loop, dist)

  def test(self, loop: loop_lib.Loop) -> dict:
    m = loop_lib.evaluate(loop, eval_dataset(
        self.strategy, self.subsets.test, "efficient_eval", self.eval_batch_size,
        image_size=self.image_size))
    self.log(f"test: top-1 {m['top1']:.4f} top-5 {m['top5']:.4f} on {m['count']} images "
             f"({self.subsets.test.split} split)")
    self.test_summary = held_out.summary(self.subsets.test, m["count"])
    return m

  def rows(self, method: str, val: dict, test: dict) -> list[dict]:
    n, f = len(self.subsets.train_ids), self.subsets.label_fraction
    return [results.row(method, f, val["val_top1"], val["val_top5"], "validation", n),
            results.row(method, f, test["top1"], test["top5"], "test", n)]


def few_labels(protocol: str, config, output_dir: str, strategy, source: str,
               subset_file: str | None, stop_after_steps: int | None,
               verbose: bool) -> FewLabels:
  """Checks output_dir and resolves the subsets of an efficient or supervised config."""
  chief = is_chief(strategy)
  # A test split the folder lacks is refused before output_dir is written.
  held_out.test_data(config.subset.data, config.subset.test_split,
                     selects_on_validation=True)
  check_run(output_dir, protocol, source, config, write=chief)
  subs = subsets.resolve(config.subset, output_dir, subset_file, write=chief)
  held_out.record(subs.train, output_dir, write=chief)  # a folder's split ids
  return FewLabels(output_dir=output_dir, subsets=subs, strategy=strategy,
                   image_size=config.image_size, crop_min_area=config.crop_min_area,
                   augment=config.augment,
                   eval_batch_size=config.eval_batch_size,
                   budget=loop_lib.Budget(stop_after_steps),
                   log=printer(verbose, chief), chief=chief)


def prune(output_dir: str, keep: int) -> None:
  """Deletes the checkpoints of every sweep point but `keep` (the best so far)."""
  for path in tf.io.gfile.glob(os.path.join(output_dir, "point-*")):
    if os.path.basename(path) != f"point-{keep}":
      tf.io.gfile.rmtree(path)


def run_sweep(run: FewLabels, points: list[HParams],
              train_point: Callable[[int, HParams], tuple[dict, loop_lib.Loop]]
              ) -> tuple[dict, loop_lib.Loop]:
  """Trains every unfinished point; returns (best sweep.csv row, its Loop).

  train_point(point, hp) trains one point (or, once it is done, restores its
  best weights) and returns (its done.json dict, its Loop). The Loop returned
  holds the best point's model with its best validation weights.
  """
  csv_path = os.path.join(run.output_dir, results.SWEEP_FILE)
  finished = {r["point"]: r for r in results.read_sweep(csv_path)}
  for i, hp in enumerate(points):
    if i in finished:
      continue
    run.log(f"sweep point {i + 1}/{len(points)}: {hp}")
    done, _ = train_point(i, hp)
    entry = {"point": i, **dataclasses.asdict(hp), "val_top1": done["val_top1"],
             "val_top5": done["val_top5"], "best_step": done["best_step"],
             "steps": done["steps"]}
    finished[i] = entry
    if run.chief:
      results.append_sweep(csv_path, entry)
      prune(run.output_dir, best_point(list(finished.values()))["point"])
  best = tested_point(finished, len(points))
  run.log(f"best sweep point {best['point']}: validation top-1 {best['val_top1']:.4f}")
  # Rebuilt from its finished directory, seeded as when it trained: what follows
  # (testing, fine-tuning) starts from the same state on a rerun.
  _, loop = train_point(best["point"], hparams(best))
  return best, loop
