"""Online k-nearest-neighbour probe of the encoder during pre-training.

Glossary: M memory (reference) images, Q query images, K classes, k voting
neighbours, Gh/Gw patch grid, P patch size, D feature depth.

Not in the paper: a cheap, label-using view of what the encoder learns while
it trains, logged as `probe/knn_top1`. Pre-training never reads labels; the
probe does, on a small labelled set drawn once per run (`labelled_set`): M
memory and Q query images, disjoint, from `ProbeConfig.split` (default: the
training split, never the test split, so a study that reports on test does
not look at it during training).

The feature of an image is the one the pre-training model computes for it,
without augmentation: the single centre crop cut into the pre-training patch
grid (`data.grid_patches` without a seed, the input linear evaluation tests
on, supp. B; in the deterministic form of the pre-training's v1 marks, as
linear evaluation tests by default: `augment.test_form`), each patch encoded to
its "pooled" vector (`model.encode_patches`, as in pre-training), then the mean
over the Gh x Gw grid -> [D]. Memory features are recomputed at every probe, since the encoder
changes; the cut patches are cached (CACHE_BYTES).

Weights: the Polyak-averaged encoder (`Trainer.averaged_model.encoder`), the
weights checkpoints hand to evaluation and export (supp. A). The probe only
reads them: it runs the encoder in inference mode (layer norm holds no state;
batch norm, where a config uses it, reads its moving statistics without
updating them), outside any distributed step, and touches no weight,
optimizer slot, iteration count or averaging state (a test compares every
variable bit for bit). Under multi-worker training only the chief calls it,
and nothing in it is a collective. (Run on CPU only so far: under TPUStrategy
the chief would run it on the host, reading the TPU's variables.)

Vote (our choice): a majority vote of the k nearest memory images by cosine
similarity; a tie between classes goes to the class of the nearest neighbour
among them. A plain count is checkable by hand and needs no temperature (the
similarity-weighted vote of Wu et al. 2018 / DINO weighs exp(s / 0.07), one
more number to choose); equal similarities rank the lower memory index first
(tf.math.top_k), so the result is deterministic.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import data as data_lib
from cpc_tf.configs import AugmentConfig, DataConfig, GridConfig, ProbeConfig
from cpc_tf.data import DataError, sources
from cpc_tf.model import encode_patches

# Centre-crop patch grids of the probe set are kept in memory between probes
# when they take at most this many bytes (Fashion-MNIST's 7x7 grid of 8 px
# patches: 38 KB per image); larger sets are re-read and re-cut at each probe.
CACHE_BYTES = 256 * 2**20

SCALAR = "probe/knn_top1"  # TensorBoard tag


def knn_predict(query: tf.Tensor, memory: tf.Tensor, memory_labels: tf.Tensor, k: int,
                num_classes: int) -> tf.Tensor:
  """Majority vote of the k most cosine-similar memory rows (module doc's tie rule).

  query [Q, D], memory [M, D] (any norm: rows are L2-normalised here),
  memory_labels [M] int in [0, K) -> predicted classes [Q] int64.
  """
  query = tf.convert_to_tensor(query, tf.float32)
  memory = tf.convert_to_tensor(memory, tf.float32)
  if query.shape.rank != 2 or memory.shape.rank != 2 or query.shape[1] != memory.shape[1]:
    raise ValueError(f"knn_predict: need query [Q, D] and memory [M, D], got "
                     f"{tuple(query.shape)} and {tuple(memory.shape)}.")
  if not 1 <= k <= memory.shape[0]:
    raise ValueError(f"knn_predict: k={k} needs 1 <= k <= M={memory.shape[0]}.")
  similarity = tf.matmul(tf.math.l2_normalize(query, axis=1),
                         tf.math.l2_normalize(memory, axis=1), transpose_b=True)  # [Q, M]
  _, nearest = tf.math.top_k(similarity, k)  # [Q, k], nearest first
  neighbour_labels = tf.gather(tf.cast(memory_labels, tf.int32), nearest)
  return tf.argmax(vote_scores(neighbour_labels, num_classes), axis=1)


def vote_scores(neighbour_labels: tf.Tensor, num_classes: int) -> tf.Tensor:
  """Classes of the k nearest, nearest first, [Q, k] int -> vote scores [Q, K] int32.

  A higher score wins the vote (module doc): more votes first, then the nearer
  nearest neighbour. Classes without a vote score -k, all equal.
  """
  k = neighbour_labels.shape[1]
  votes = tf.one_hot(tf.cast(neighbour_labels, tf.int32), num_classes,
                     dtype=tf.int32)  # [Q, k, K]
  counts = tf.reduce_sum(votes, axis=1)  # [Q, K]
  # Rank (0 = nearest) of each class's nearest neighbour; k for absent classes.
  ranks = tf.range(k, dtype=tf.int32)[None, :, None]
  first = tf.reduce_min(tf.where(votes > 0, ranks, k), axis=1)  # [Q, K]
  # One more vote outweighs any rank (ranks < k + 1); equal counts: nearer wins.
  return counts * (k + 1) - first


def knn_top1(query, query_labels, memory, memory_labels, k: int, num_classes: int) -> float:
  """Fraction of the Q queries whose `knn_predict` class is their label."""
  predicted = knn_predict(query, memory, memory_labels, k, num_classes)
  hits = tf.equal(predicted, tf.cast(query_labels, tf.int64))
  return float(tf.reduce_mean(tf.cast(hits, tf.float32)))


@dataclasses.dataclass(frozen=True)
class LabelledSet:
  """The probe's images: two disjoint id lists of one labelled split."""

  data: DataConfig  # the split they are read from
  memory_ids: tuple[str, ...]  # M ids (`data.example_ids` form)
  query_ids: tuple[str, ...]  # Q ids
  class_names: tuple[str, ...]  # K names, label order

  @property
  def num_classes(self) -> int:
    return len(self.class_names)


def probe_data(config: ProbeConfig, pretrain_data: DataConfig) -> DataConfig:
  """The DataConfig the probe reads: the pre-training data's (source "") or its own."""
  if not config.source:
    # The whole split, whatever max_examples pre-training uses.
    return dataclasses.replace(pretrain_data, split=config.split, max_examples=0)
  return DataConfig(source=config.source, split=config.split, path=config.path,
                    data_dir=pretrain_data.data_dir)


def _where(data: DataConfig) -> str:
  at = f" at {data.path}" if data.path else ""
  return f"the {data.split!r} split of {data.source!r}{at}"


_OFF = ("Give a labelled set (--probe_source, --probe_split) or switch the probe off "
        "(--probe_every=0, ProbeConfig.every_steps=0).")


def labelled_set(config: ProbeConfig, pretrain_data: DataConfig) -> LabelledSet:
  """Draws the memory and query ids (seeded, disjoint); DataError if there are no labels.

  Sources that list their ids cheaply (Fashion-MNIST, folders) are drawn from
  in full; a TFDS split only from its first M + Q examples in storage order,
  so that no run reads a whole ImageNet split to pick a few hundred images.
  """
  data = probe_data(config, pretrain_data)
  wanted = config.memory_size + config.query_size
  try:
    source = sources.load(data, labelled=True)
    if source.ids is None:  # TFDS
      data = dataclasses.replace(data, max_examples=wanted)
      source = sources.load(data, labelled=True)
  except DataError as e:
    raise DataError(f"The kNN probe cannot read {_where(data)}: {e} {_OFF}") from e
  if source.class_names is None:
    raise DataError(f"The kNN probe needs labels and {_where(data)} has none. {_OFF}")
  ids = list(source.ids) if source.ids is not None else data_lib.example_ids(data)
  if len(ids) < wanted:
    raise DataError(
        f"The kNN probe needs {wanted} images (memory {config.memory_size} + query "
        f"{config.query_size}) and {_where(data)} holds {len(ids)}; lower "
        "--probe_memory_size / --probe_query_size.")
  chosen = np.random.default_rng(config.seed).permutation(len(ids))[:wanted]
  memory = tuple(ids[i] for i in chosen[:config.memory_size])
  query = tuple(ids[i] for i in chosen[config.memory_size:])
  labels = _labels(source, memory + query)
  if min(labels.values()) < 0:
    raise DataError(f"The kNN probe needs labels and {_where(data)} has none (its "
                    f"examples carry label -1, an unlabelled split). {_OFF}")
  return LabelledSet(data, memory, query, tuple(source.class_names))


def _labels(source: sources.Source, ids: tuple[str, ...]) -> dict[str, int]:
  """{id: label} of `ids`, read from the source's undecoded elements."""
  keep = data_lib.id_filter(ids)

  def kept(batch):  # batched: one lookup per 4096 elements, not one per element
    mask = keep(batch["id"])
    return tf.boolean_mask(batch["id"], mask), tf.boolean_mask(batch["label"], mask)

  pairs = source.dataset.batch(4096).map(kept)
  return {i.decode(): int(label) for batch_ids, batch_labels in pairs.as_numpy_iterator()
          for i, label in zip(batch_ids, batch_labels)}


class Probe:
  """`probe()` -> kNN top-1 of the encoder's current weights on the labelled set."""

  def __init__(self, config: ProbeConfig, labelled: LabelledSet, grid: GridConfig,
               encoder: keras.Model, test_form: AugmentConfig | None = None):
    """test_form: the pre-training AugmentConfig (`data.grid_patches`), or None."""
    self.config = config
    self.test_form = test_form
    self.labelled = labelled
    self.encoder = encoder
    self.seconds = 0.0  # spent in probe() so far, tracing and data included
    self.calls = 0
    n = len(labelled.memory_ids) + len(labelled.query_ids)
    # Equal batches of at most batch_size images: the last one is barely padded.
    self._batch = -(-n // -(-n // config.batch_size))
    self._images = self._dataset(grid)
    g, p = grid.grid_size, grid.patch_size
    # One static shape, one trace: a smaller last batch is padded. No XLA: it ran
    # 1.6x faster per image on the 2-core CPU but took 7-30 s to compile, more
    # than it saved in a 300-step run.
    self._features = tf.function(self._pooled, input_signature=[
        tf.TensorSpec([self._batch, g, g, p, p, 3], tf.float32)])

  def _dataset(self, grid: GridConfig) -> tf.data.Dataset:
    """(patches [B, Gh, Gw, P, P, 3], labels [B], in memory [B] bool) of both sets, once.

    The input of linear evaluation's test split (`data.grid_patches` without a
    seed: the centre crop, no augmentation), read through a batched id filter:
    `efficient_eval_dataset(keep_ids=...)` looks every id up on its own, 3 s per
    pass over Fashion-MNIST's 60k on the 2-core CPU.
    """
    source = sources.load(self.labelled.data, labelled=True)
    keep = data_lib.id_filter(self.labelled.memory_ids + self.labelled.query_ids)
    in_memory = data_lib.id_filter(self.labelled.memory_ids)

    def kept(batch):  # one lookup per 4096 elements
      mask = keep(batch["id"])
      return {name: tf.boolean_mask(value, mask) for name, value in batch.items()}

    def make(element):
      patches = data_lib.grid_patches(source.decode(element["image"]), grid,
                                      test_form=self.test_form)
      return patches, element["label"], in_memory(element["id"][None])[0]

    ds = (source.dataset.batch(4096).map(kept).unbatch()
          .map(make, num_parallel_calls=tf.data.AUTOTUNE).batch(self._batch))
    n = len(self.labelled.memory_ids) + len(self.labelled.query_ids)
    size = n * grid.grid_size ** 2 * grid.patch_size ** 2 * 3 * 4  # float32 patches
    return ds.cache() if size <= CACHE_BYTES else ds.prefetch(1)

  def _pooled(self, patches: tf.Tensor) -> tf.Tensor:
    """[B, Gh, Gw, P, P, 3] -> mean over the grid of each patch's pooled vector, [B, D]."""
    latents = encode_patches(self.encoder, patches, training=False)  # [B, Gh, Gw, D]
    return tf.reduce_mean(tf.cast(latents, tf.float32), axis=[1, 2])

  def encode(self) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """(features [M + Q, D], labels [M + Q], in memory [M + Q] bool), storage order."""
    features, labels, in_memory = [], [], []
    for patches, label, memory in self._images:
      n = tf.shape(patches)[0]
      padded = tf.pad(patches, [[0, self._batch - n]] + [[0, 0]] * 5)
      features.append(self._features(padded)[:n])
      labels.append(label)
      in_memory.append(memory)
    return tf.concat(features, 0), tf.concat(labels, 0), tf.concat(in_memory, 0)

  def __call__(self) -> float:
    started = time.perf_counter()
    features, labels, in_memory = self.encode()
    query = tf.logical_not(in_memory)
    top1 = knn_top1(tf.boolean_mask(features, query), tf.boolean_mask(labels, query),
                    tf.boolean_mask(features, in_memory), tf.boolean_mask(labels, in_memory),
                    self.config.k, self.labelled.num_classes)
    self.seconds += time.perf_counter() - started
    self.calls += 1
    return top1
