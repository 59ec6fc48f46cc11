"""Frozen-encoder features cached on disk (arXiv v1 7.1's suggestion).

When the encoder is frozen (the first phase of supp. C.2, the linear protocol
of supp. B, learning dynamics), every epoch of classifier training recomputes
the same encoder outputs. Extracting them once to sharded TFRecord files and
training the head from those files gives the same logits and losses (tests
check it) at a fraction of the cost.

What the cache implies: features are computed from the evaluation-style input
(`efficient_eval`: the central crop; `linear_eval`: the centre crop's patch
grid), once per example. Training from a cache therefore has NO per-step
augmentation: no random crops, no supp. A colour or geometric steps. Use it
where that is the intended protocol, or accept the difference.

Glossary: B batch, N cached examples, h/w feature grid, D feature depth,
K classes.

A cache directory holds
  features.json                   metadata (CacheInfo): shape [h, w, D], N,
                                  shards, where the features came from
  features-SSSSS-of-NNNNN.tfrecord   tf.train.Example per image with
      "feature"  bytes, the float32 feature array [h, w, D] (little-endian)
      "label"    int64 class index
      "id"       bytes, the example id of `cpc_tf.data.example_ids`
Examples go to shards round-robin in source order, so reading the shards
interleaved one by one gives back that order. features.json is written last:
a directory without it is an unfinished extraction and is refused.

Reading a cache back: `feature_dataset(cache_dir, ...)` gives (features,
labels) batches, so that `classifier.head(features)` equals `classifier(inputs)`.
(No binary trains from a cache: the protocols train with per-step
augmentation, which a cache cannot hold.)

Size: one example stores prod(shape) float32 values; the supp. C.2 grid of a
ResNet-161 at 224 px (14x14x4096) is 3.2 MB, i.e. 41 GB for ImageNet's 1%
subset. The cache pays off for small grids and the linear protocol's pooled
vectors.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Collection

import keras
import numpy as np
import tensorflow as tf

from cpc_tf.eval import classifiers
from cpc_tf import data as data_lib
from cpc_tf import records, resnet
from cpc_tf.configs import DataConfig, GridConfig

INFO_FILE = "features.json"
EVAL_MODES = ("efficient_eval", "linear_eval")
NUM_SHARDS = 8


class CacheError(ValueError):
  """A cache directory is missing, unfinished, or does not fit the request."""


@dataclasses.dataclass(frozen=True)
class CacheInfo:
  """Contents of features.json."""

  shape: tuple[int, ...]  # one example's features, e.g. (h, w, D)
  num_examples: int
  shards: tuple[str, ...]  # file names inside the cache directory
  num_classes: int
  source: dict  # where the features came from: data, mode, encoder, step, ...

  def to_dict(self) -> dict:
    return dict(dataclasses.asdict(self), shape=list(self.shape), shards=list(self.shards))


def shard_name(index: int, num_shards: int) -> str:
  return f"features-{index:05d}-of-{num_shards:05d}.tfrecord"


def read_info(cache_dir: str) -> CacheInfo:
  """The cache's metadata; CacheError if the directory is not a finished cache."""
  path = os.path.join(cache_dir, INFO_FILE)
  if not tf.io.gfile.exists(path):
    raise CacheError(f"{path} not found: {cache_dir} is not a finished feature cache "
                     "(extraction not run, or interrupted). Run the extraction again.")
  with tf.io.gfile.GFile(path) as f:
    d = json.load(f)
  return CacheInfo(tuple(d["shape"]), d["num_examples"], tuple(d["shards"]),
                   d["num_classes"], d["source"])


# ----------------------------------------------------------------------------
# Writing

def labelled_inputs(data: DataConfig, mode: str, batch_size: int, *,
                    image_size: int | None = None,
                    grid: GridConfig | None = None) -> tf.data.Dataset:
  """(inputs, labels [B], ids [B]) in source order, each example once.

  inputs are images [B, S, S, 3] ("efficient_eval") or patch grids
  [B, Gh, Gw, P, P, 3] ("linear_eval"), the deterministic evaluation inputs of
  `cpc_tf.data.EVAL_DATASETS`; ids come from `example_ids`, which
  lists the same examples in the same order.
  """
  if mode not in EVAL_MODES:
    raise CacheError(f"mode={mode!r}: features are cached from a deterministic input; "
                     f"choose one of {EVAL_MODES}.")
  kwargs = {"grid": grid} if mode == "linear_eval" else {}
  if image_size is not None and mode == "efficient_eval":  # a grid sets the linear size
    kwargs["image_size"] = image_size
  # on_bad_file="fail": a skipped file would shift every later id by one.
  images = data_lib.EVAL_DATASETS[mode](data, batch_size, on_bad_file="fail", **kwargs)
  ids = tf.data.Dataset.from_tensor_slices(data_lib.example_ids(data, labelled=True))
  return tf.data.Dataset.zip(images, ids.batch(batch_size)).map(
      lambda batch, i: (batch[0], batch[1], i))


def write_features(features_fn: Callable[[tf.Tensor], tf.Tensor], dataset: tf.data.Dataset,
                   cache_dir: str, *, num_classes: int, num_shards: int = NUM_SHARDS,
                   source: dict | None = None, verbose: bool = False) -> CacheInfo:
  """Runs `features_fn` over `dataset` and writes the cache; returns its CacheInfo.

  features_fn: inputs -> [B, ...] float features (e.g. a frozen
    `cpc_tf.eval.classifiers.Classifier.features`, wrapped in tf.function).
  dataset: (inputs, labels [B], ids [B]) batches, e.g. `labelled_inputs`.
  An existing finished cache in `cache_dir` is overwritten.
  """
  if num_shards < 1:
    raise CacheError(f"num_shards={num_shards}: need at least 1.")
  tf.io.gfile.makedirs(cache_dir)
  info_path = os.path.join(cache_dir, INFO_FILE)
  if tf.io.gfile.exists(info_path):
    tf.io.gfile.remove(info_path)  # the cache is unfinished until rewritten
  names = tuple(shard_name(i, num_shards) for i in range(num_shards))
  writers = [tf.io.TFRecordWriter(os.path.join(cache_dir, n + ".tmp")) for n in names]
  shape, count, seen = None, 0, set()
  try:
    for inputs, labels, ids in dataset:
      features = np.asarray(features_fn(inputs), dtype="<f4")
      if shape is None:
        shape = features.shape[1:]
      elif features.shape[1:] != shape:
        raise CacheError(f"features_fn gave shape {features.shape[1:]} after {shape}: "
                         "cached features need one static shape.")
      for feature, label, example_id in zip(features, labels.numpy(), ids.numpy()):
        if example_id in seen:
          raise CacheError(f"Example id {example_id!r} appears twice; ids must be unique.")
        seen.add(example_id)
        writers[count % num_shards].write(_example(feature, int(label), example_id))
        count += 1
      if verbose:
        print(f"  features of {count} examples", flush=True)
  finally:
    for w in writers:
      w.close()
  if not count:
    raise CacheError("The dataset was empty: nothing to cache.")
  for n in names:
    tf.io.gfile.rename(os.path.join(cache_dir, n + ".tmp"), os.path.join(cache_dir, n),
                       overwrite=True)
  info = CacheInfo(tuple(int(s) for s in shape), count, names, num_classes, source or {})
  records.write_json(info_path, info.to_dict())
  return info


def _example(feature: np.ndarray, label: int, example_id: bytes) -> bytes:
  return tf.train.Example(features=tf.train.Features(feature={
      "feature": tf.train.Feature(bytes_list=tf.train.BytesList(value=[feature.tobytes()])),
      "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
      "id": tf.train.Feature(bytes_list=tf.train.BytesList(value=[example_id])),
  })).SerializeToString()


def extractor(encoder: keras.Model, grid: GridConfig | None = None) -> classifiers.Classifier:
  """A Classifier without a head, for `extract`: what a protocol's head would see.

  grid None: whole images -> the encoder's last stack grid [B, h, w, D] (supp.
  C.2). With a grid: patches -> the pooled vector per patch [B, Gh, Gw, D]
  (supp. B).
  """
  feature = "pooled" if grid is not None else resnet.last_stack(encoder.output)
  return classifiers.Classifier(encoder, keras.layers.Identity(name="no_head"), feature,
                                grid, name="feature_extractor")


def extract(classifier: classifiers.Classifier, data: DataConfig, cache_dir: str, *,
            mode: str = "efficient_eval", batch_size: int = 64, image_size: int | None = None,
            grid: GridConfig | None = None, num_shards: int = NUM_SHARDS,
            source: dict | None = None, verbose: bool = False) -> CacheInfo:
  """Caches `classifier.features` (frozen encoder, inference mode) of a split.

  classifier: a `cpc_tf.eval.classifiers.Classifier`; its head's input is what is
  stored, so `classifier.head(cached)` equals `classifier(inputs)`.
  `source` is merged into the metadata (e.g. model_dir and checkpoint step).
  """
  fn = tf.function(lambda x: classifier.features(x, training=False, train_encoder=False))
  dataset = labelled_inputs(data, mode, batch_size, image_size=image_size, grid=grid)
  described = dict(source or {}, data=dataclasses.asdict(data), mode=mode,
                   feature=classifier.feature, augmentation="none (evaluation crop)")
  return write_features(fn, dataset, cache_dir, num_classes=data_lib.num_classes(data),
                        num_shards=num_shards, source=described, verbose=verbose)


# ----------------------------------------------------------------------------
# Reading

def feature_dataset(cache_dir: str, batch_size: int, *, training: bool = False,
                    seed: int = 0, repeat: bool | None = None, shuffle_buffer: int = 1_000,
                    keep_ids: Collection[str | int] | None = None, with_ids: bool = False,
                    input_context: tf.distribute.InputContext | None = None
                    ) -> tf.data.Dataset:
  """Cached (features [B, *shape] float32, labels [B] int64) batches.

  Like `cpc_tf.data`'s classification pipelines: training shuffles (seeded),
  repeats (unless repeat=False) and drops the remainder; otherwise each example
  comes once in source order and the last batch is kept. `keep_ids` keeps
  only those examples (a labelled subset or a validation split). With an
  `input_context` the batch is per replica and each input pipeline reads its
  own share. `with_ids` appends the ids [B] as a third element.
  """
  info = read_info(cache_dir)
  if batch_size <= 0:
    raise CacheError(f"batch_size={batch_size}: must be positive.")
  files = [os.path.join(cache_dir, n) for n in info.shards]
  # Round-robin shards read back interleaved, one record each: source order.
  ds = tf.data.Dataset.from_tensor_slices(files).interleave(
      tf.data.TFRecordDataset, cycle_length=len(files), block_length=1)
  shape = list(info.shape)
  spec = {"feature": tf.io.FixedLenFeature([], tf.string),
          "label": tf.io.FixedLenFeature([], tf.int64),
          "id": tf.io.FixedLenFeature([], tf.string)}

  def parse(record):
    e = tf.io.parse_single_example(record, spec)
    feature = tf.reshape(tf.io.decode_raw(e["feature"], tf.float32, little_endian=True),
                         shape)
    return feature, e["label"], e["id"]

  ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  keep = data_lib.id_filter(keep_ids)
  if keep is not None:
    ds = ds.filter(lambda f, l, i: keep(i))
  if input_context is not None:
    ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    batch_size = input_context.get_per_replica_batch_size(batch_size)
  if training:
    # Buffer in examples: one 14x14x4096 grid (supp. C.2 at 224 px) is 3.2 MB.
    ds = ds.shuffle(max(1, min(info.num_examples, shuffle_buffer)), seed=seed,
                    reshuffle_each_iteration=True)
  if training if repeat is None else repeat:
    ds = ds.repeat()
  if not with_ids:
    ds = ds.map(lambda f, l, i: (f, l))
  return ds.batch(batch_size, drop_remainder=training).prefetch(tf.data.AUTOTUNE)
