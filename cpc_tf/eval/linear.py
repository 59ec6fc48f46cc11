"""supp. B: linear classification on the frozen encoder's patch grid.

Glossary: B global batch, Gh/Gw patch grid, P patch size, D feature depth, K classes.

Layout of output_dir (rerunning the same command resumes from it):
  config.json    protocol, encoder and resolved config; a rerun must match
  linear/        a `cpc_tf.eval.loop` phase directory (head, Adam, step; with
                 config.validation_size > 0 also the best validated head)
  features.npz   with cache_features: the grid means [N, D] and labels [N] of the
                 training, validation and test images (written once, atomically)
  splits.json    image folders only: every split's ids (`cpc_tf.eval.held_out`)
  results.json   the method's row on the test split (and on the validation
                 carve, when there is one), and "test": which split and how
                 many images
"""

from __future__ import annotations

import dataclasses
import io
import os
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import data, inference, records
from cpc_tf.configs import LinearEvalConfig
from cpc_tf.distribute import is_chief
from cpc_tf.eval import classifiers, encoders, held_out, results, subsets
from cpc_tf.eval import loop as loop_lib
from cpc_tf.eval import sweep
from cpc_tf.patches import PRESET_GRIDS


def train_linear(model_dir: str, config: LinearEvalConfig, output_dir: str,
                 strategy: tf.distribute.Strategy | None = None, *,
                 step: int | None = None, stop_after_steps: int | None = None,
                 verbose: bool = True, method: str = "CPC v2 linear") -> dict:
  """Linear evaluation of the encoder in model_dir (latest checkpoint, or `step`).

  The frozen encoder sees the pre-training patch grid (or `config.grid`);
  training patches get the pre-training augmentation, test patches none
  (single centre crop; with config.match_test_patches, the deterministic form
  of the pre-training's v1 marks on every patch: `augment.test_form`). With
  config.validation_size > 0 that many training images are held out and the
  best validated step is tested. Returns the
  results.json dict (rows named `method`). Raises stop.Interrupted after
  `stop_after_steps` steps.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = is_chief(strategy)
  log = sweep.printer(verbose, chief)
  with strategy.scope():
    encoder = encoders.load(model_dir, step, config.encoder)
  pre = encoder.pretrain
  if pre is None:
    kind = "a supervised baseline" if encoder.supervised else "an exported SavedModel"
    raise ValueError(
        f"{model_dir} is {kind}. Linear evaluation cuts images into the "
        "pre-training patch grid and applies the pre-training augmentation (supp. B), "
        "which only a pre-training model_dir records (config.json): pass that --model_dir.")
  grid = eval_grid(pre, config.grid, config.grid_image_size, config.grid_patch_size,
                   config.grid_stride)
  if config.cache_features and (why := uncacheable(pre, grid)):
    raise ValueError(f"cache_features=True trains on one encoding per image, but {why}: "
                     "its training patches differ at every step. Use cache_features=False "
                     "(supp. B's per-step pipeline).")
  # supp. B: the pre-training pipeline, including its per-patch augmentation.
  train_data = dataclasses.replace(config.data, pipeline=pre.data.pipeline)
  # An image folder is tested on its held-out split, never its training images;
  # checked before output_dir is written, so a corrected rerun is not refused.
  test_data = held_out.test_data(train_data, config.test_split)
  sweep.check_run(output_dir, "linear", encoder.source, config, write=chief)
  r = strategy.num_replicas_in_sync
  if config.batch_size % r:
    raise ValueError(f"batch_size={config.batch_size} is the global batch; it must be a "
                     f"multiple of the {r} replicas.")
  held_out.record(train_data, output_dir, write=chief)
  train_ids, validation_ids = carve_validation(train_data, config.validation_size,
                                               config.seed)
  classifiers.seed_initialisers(config.seed)
  with strategy.scope():
    model = classifiers.linear_classifier(encoder.model, grid, data.num_classes(train_data),
                                          config.bn_momentum)
    groups = [loop_lib.Group(keras.optimizers.Adam(config.learning_rate),  # supp. B
                             model.head.trainable_variables)]
    trained = classifiers.PooledLinear(model.head) if config.cache_features else model
  loop = loop_lib.classification_loop(trained, groups, train_encoder=False,
                                      strategy=strategy, xla_counts=config.xla_inference)
  form = pre.augment if config.match_test_patches else None
  if config.cache_features:
    splits = {"train": (train_data, train_ids), "test": (test_data, None)}
    if validation_ids is not None:
      splits["validation"] = (train_data, validation_ids)
    cache = GridMeans.load_or_encode(os.path.join(output_dir, FEATURES_FILE), model, grid,
                                     config.eval_batch_size, splits, write=chief, log=log,
                                     xla=config.xla_inference)
    train_fn = cache.train_fn(config.batch_size)
    val_data = (cache.dataset(strategy, "validation", config.eval_batch_size)
                if validation_ids is not None else None)
    test_dist = cache.dataset(strategy, "test", config.eval_batch_size)
  else:
    def train_fn(ctx, seed):
      return data.linear_train_dataset(
          train_data, config.batch_size, seed, grid=grid,
          augment=pre.augment, keep_ids=train_ids, input_context=ctx)

    val_data = None if validation_ids is None else sweep.eval_dataset(
        strategy, train_data, "linear_eval", config.eval_batch_size, validation_ids,
        grid=grid, test_form=form)
    test_dist = sweep.eval_dataset(strategy, test_data, "linear_eval",
                                   config.eval_batch_size, grid=grid, test_form=form)
  validate = None
  if validation_ids is not None:
    validate = lambda: loop_lib.evaluate(loop, val_data)  # noqa: E731
  n = (len(train_ids) if train_ids is not None
       else data.num_examples(train_data, labelled=True))
  steps, every = loop_lib.epoch_budget(config.train_steps, config.train_epochs,
                                       config.eval_every, config.eval_every_epochs, n,
                                       config.batch_size)
  phase = loop_lib.Phase(os.path.join(output_dir, "linear"), "linear", steps, every,
                         patience=config.patience if validate else 0, seed=config.seed)
  # With validation the head ends at its best validated step (cpc_tf.eval.loop).
  done = loop_lib.run_phase(loop, phase, train_fn, validate=validate,
                            track={"head": model.head},
                            budget=loop_lib.Budget(stop_after_steps), log=log)
  test = loop_lib.evaluate(loop, test_dist)
  log(f"test: top-1 {test['top1']:.4f} top-5 {test['top5']:.4f} on {test['count']} images "
      f"({test_data.split} split)")
  rows = [results.row(method, 1.0, test["top1"], test["top5"], "test", n)]
  if validation_ids is not None:
    rows.insert(0, results.row(method, 1.0, done["val_top1"], done["val_top5"],
                               "validation", n))
  return sweep.write_results(chief, output_dir, "linear", config.data.source,
                             encoder.source, rows, config,
                             held_out.summary(test_data, test["count"]))


def carve_validation(train_data, count: int, seed: int
                     ) -> tuple[list[str] | None, list[str] | None]:
  """(training ids, validation ids): `count` seeded class-stratified training images
  held out (`cpc_tf.eval.subsets`); (None, None) when count is 0 (supp. B)."""
  if count == 0:
    return None, None
  index = subsets.read_index(train_data)
  if count >= len(index.ids):
    raise ValueError(f"validation_size={count} holds out every one of the {len(index.ids)} "
                     "training images; lower --validation_size.")
  held = set(subsets.take_stratified(index.labels, count, seed).tolist())
  train = [i for k, i in enumerate(index.ids) if k not in held]
  return train, [index.ids[k] for k in sorted(held)]


def eval_grid(pre, name: str, image_size: int = 0, patch_size: int = 0,
              stride: int = 0):
  """The evaluation GridConfig: `name` ("pretrain": `pre`'s, or a preset grid) with each
  size > 0 replaced; ValueError unless it tiles and cuts the encoder's patch size.

  A new image_size moves resize_to with it (same margin), so the training crop
  still fits in the resized image.
  """
  grid = pre.model.grid if name == "pretrain" else preset_grid(name)
  changes = {k: v for k, v in (("image_size", image_size), ("patch_size", patch_size),
                               ("stride", stride)) if v > 0}
  if "image_size" in changes:
    changes["resize_to"] = grid.resize_to - grid.image_size + changes["image_size"]
  grid = dataclasses.replace(grid, **changes)
  encoders.check_grid(pre, grid)  # before any tf.data is built
  return grid


def preset_grid(name: str):
  if name not in PRESET_GRIDS:
    raise ValueError(f"grid={name!r}: use 'pretrain' or one of {sorted(PRESET_GRIDS)}.")
  return PRESET_GRIDS[name]


FEATURES_FILE = "features.npz"


def uncacheable(pre, grid) -> str | None:
  """Why the linear training patches change from step to step (None: they do not)."""
  if data.augments(pre.augment):
    return "pre-training augments its patches (supp. B trains on the same pipeline)"
  if grid.resize_to != grid.image_size:
    return (f"pre-training crops {grid.image_size} px at random from {grid.resize_to} px "
            "images")
  return None


@dataclasses.dataclass
class GridMeans:
  """Cached grid means [N, D] and labels [N] per split ("train", "validation", "test")."""

  arrays: dict[str, tuple[np.ndarray, np.ndarray]]

  @classmethod
  def load_or_encode(cls, path: str, model: classifiers.Classifier, grid, batch_size: int,
                     splits: dict, write: bool = True,
                     log: Callable[[str], None] = print, xla: bool = False) -> GridMeans:
    """Reads `path`, or encodes each split (DataConfig, ids or None for all) and writes it.

    The images are cut as in evaluation (`linear_eval`: the whole-image crop, no
    augmentation), which `uncacheable` has checked is also the training input.
    xla: the encoding compiled by XLA (cpc_tf/inference.py).
    """
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path, "rb") as f:
        saved = np.load(io.BytesIO(f.read()))
        return cls({k: (saved[f"{k}_x"], saved[f"{k}_y"]) for k in splits})
    means = inference.forward(lambda x: tf.reduce_mean(model.features(x), axis=[1, 2]),
                              xla=xla, reduce_retracing=True)
    arrays = {}
    for name, (data_config, ids) in splits.items():
      xs, ys = [], []
      for x, y in data.linear_eval_dataset(data_config, batch_size, grid=grid, keep_ids=ids):
        xs.append(means(x).numpy())
        ys.append(y.numpy())
      arrays[name] = (np.concatenate(xs), np.concatenate(ys))
      log(f"encoded the {name} images once: {arrays[name][0].shape} grid means")
    if write:
      buffer = io.BytesIO()
      np.savez(buffer, **{f"{k}_{a}": v for k, (x, y) in arrays.items()
                          for a, v in (("x", x), ("y", y))})
      records.write_text(path, buffer.getvalue(), mode="wb")
    return cls(arrays)

  def train_fn(self, batch_size: int) -> loop_lib.DatasetFn:
    """Shuffled, repeated (means, labels) batches of the training split."""
    x, y = self.arrays["train"]

    def fn(ctx, seed):
      ds = tf.data.Dataset.from_tensor_slices((x, y)).shard(ctx.num_input_pipelines,
                                                            ctx.input_pipeline_id)
      return ds.shuffle(len(y), seed=seed).repeat().batch(
          ctx.get_per_replica_batch_size(batch_size), drop_remainder=True)
    return fn

  def dataset(self, strategy: tf.distribute.Strategy, split: str, batch_size: int):
    """One distributed pass over a cached split, in order."""
    x, y = self.arrays[split]
    r = strategy.num_replicas_in_sync
    return strategy.distribute_datasets_from_function(
        lambda ctx: tf.data.Dataset.from_tensor_slices((x, y)).shard(
            ctx.num_input_pipelines, ctx.input_pipeline_id).batch(
                ctx.get_per_replica_batch_size(max(r, batch_size // r * r))))
