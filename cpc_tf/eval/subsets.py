"""Labelled subsets, the held-out validation split and the test split (supp. C).

Glossary: N examples in the training split, K classes, n_c examples of class c,
f the label fraction, V validation examples.

From the training split, V examples are held out for model selection (supp.
C.1: ~10k on ImageNet), then a fraction f of the rest is kept as the labelled
training set. Both draws are stratified: each class keeps floor or ceil of its
share (f * n_c), so the subset has the class balance of the split. The test
split is only read for the final report. An image folder with its own
validation/ folder is validated on that folder instead of a held-out share,
and is tested on its test split (`cpc_tf.eval.held_out`).

On TFDS imagenet2012 with f = 1% or 10% the labelled set is the standard
`imagenet2012_subset/1pct` or `/10pct`, and the validation images are drawn
from imagenet2012's train split among images NOT in that subset (matched by
file name), so no validation image is trained on.

A `Subsets` is written to `<output_dir>/subset.json` (every example id) so a
run can be repeated exactly, or passed to another run as a subset file.
"""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from cpc_tf import configs
from cpc_tf.eval import held_out, results
from cpc_tf.configs import DataConfig, SubsetConfig
from cpc_tf.data import sources

SUBSET_FILE = "subset.json"
# The label fractions with a standard TFDS subset of imagenet2012.
STANDARD_SUBSETS = {0.01: "imagenet2012_subset/1pct", 0.1: "imagenet2012_subset/10pct"}


@dataclasses.dataclass(frozen=True)
class Index:
  """Ids, labels and (TFDS only) file names of every example of one split."""

  ids: tuple[str, ...]
  labels: np.ndarray  # [N] int64
  file_names: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Subsets:
  """The three splits of one run: where each is read from and which ids it keeps."""

  label_fraction: float
  seed: int
  train: DataConfig
  train_ids: tuple[str, ...]
  validation: DataConfig
  validation_ids: tuple[str, ...]
  test: DataConfig

  def to_json(self) -> dict:
    return {"label_fraction": self.label_fraction, "seed": self.seed,
            "train": configs.to_dict(self.train), "train_ids": list(self.train_ids),
            "validation": configs.to_dict(self.validation),
            "validation_ids": list(self.validation_ids), "test": configs.to_dict(self.test)}

  @classmethod
  def from_json(cls, d: dict) -> "Subsets":
    return cls(label_fraction=float(d["label_fraction"]), seed=int(d["seed"]),
               train=configs.from_dict(DataConfig, d["train"]),
               train_ids=tuple(str(i) for i in d["train_ids"]),
               validation=configs.from_dict(DataConfig, d["validation"]),
               validation_ids=tuple(str(i) for i in d["validation_ids"]),
               test=configs.from_dict(DataConfig, d["test"]))


def read_index(data: DataConfig, file_names: bool = False) -> Index:
  """Ids and labels of the split (and, if asked, TFDS file names), images undecoded.

  Reads the whole split once (a second pass for the file names).
  """
  source = sources.load(data, labelled=True)
  if source.class_names is None:
    raise ValueError(f"{data.source!r} has no class labels; the classification protocols "
                     "need a labelled dataset.")
  ds = source.dataset.map(_id_and_label)
  ids, labels = [], []
  for batch in ds.batch(4096).as_numpy_iterator():
    ids += [i.decode() if isinstance(i, bytes) else str(i) for i in batch["id"]]
    labels.append(batch["label"])
  labels = np.concatenate(labels) if labels else np.zeros([0], np.int64)
  return Index(tuple(ids), labels.astype(np.int64),
               _tfds_file_names(data) if file_names else None)


def _id_and_label(element):
  return {"id": element["id"], "label": element["label"]}


def _tfds_file_names(data: DataConfig) -> tuple[str, ...] | None:
  """imagenet2012's `file_name` feature in storage order; None for other sources."""
  if data.source in ("fashion_mnist", "folder"):
    return None
  b = sources.builder(data.source, data.data_dir)
  if "file_name" not in b.info.features:
    return None
  split = data.split if data.max_examples <= 0 else f"{data.split}[:{data.max_examples}]"
  skip = {k: tfds.decode.SkipDecoding() for k, f in b.info.features.items()
          if isinstance(f, tfds.features.Image)}
  ds = b.as_dataset(split=split, decoders=skip, shuffle_files=False)
  return tuple(f.decode() for f in ds.map(lambda e: e["file_name"]).as_numpy_iterator())


def stratified_order(labels: np.ndarray, seed: int) -> np.ndarray:
  """A permutation of [N] whose every prefix holds each class in proportion.

  Within a class the order is a seeded shuffle; element p (0-based) of class c
  gets the key (p + 0.5) / n_c and elements are sorted by key (ties broken at
  random). Any prefix of length m then holds floor or ceil of m * n_c / N of
  class c (up to ties).
  """
  rng = np.random.default_rng(seed)
  labels = np.asarray(labels)
  keys = np.zeros(len(labels))
  for c in np.unique(labels):
    members = np.flatnonzero(labels == c)
    rng.shuffle(members)
    keys[members] = (np.arange(len(members)) + 0.5) / len(members)
  return np.lexsort((rng.random(len(labels)), keys))


def take_stratified(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
  """Positions of `count` examples drawn class-proportionally with `seed`."""
  if not 0 <= count <= len(labels):
    raise ValueError(f"Cannot take {count} of {len(labels)} examples.")
  return np.sort(stratified_order(labels, seed)[:count])


def balanced_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """Positions of a class-balanced fraction: floor or ceil of f * n_c per class."""
  check_fraction(fraction)
  count = max(1, int(round(fraction * len(labels))))
  return take_stratified(labels, count, seed)


def check_fraction(fraction: float) -> None:
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"label_fraction={fraction}: must lie in (0, 1], e.g. 0.01 for 1% "
                     "of the labels or 1.0 for all of them (--label_fraction=0.01).")


def validation_count(config: SubsetConfig, num_examples: int) -> int:
  """V: validation_fraction * N when set, else validation_size (capped below N)."""
  if config.validation_fraction > 0:
    count = int(round(config.validation_fraction * num_examples))
  else:
    count = config.validation_size
  if count <= 0:
    raise ValueError(
        f"No validation split: validation_size={config.validation_size}, "
        f"validation_fraction={config.validation_fraction}. Model selection needs one: "
        "set --validation_size (paper: 10000 on ImageNet) or --validation_fraction.")
  if count >= num_examples:
    raise ValueError(
        f"A validation split of {count} images leaves nothing to train on: the training "
        f"split has {num_examples}. Lower --validation_size or --validation_fraction.")
  return count


def standard_subset(config: SubsetConfig) -> str | None:
  """The TFDS subset name for imagenet2012 at 1% / 10%, else None."""
  if config.data.source != "imagenet2012" or config.data.max_examples > 0:
    return None
  return STANDARD_SUBSETS.get(config.label_fraction)


def make_subsets(config: SubsetConfig, index_fn=read_index) -> Subsets:
  """Draws the validation split and the labelled subset (see the module doc)."""
  check_fraction(config.label_fraction)
  standard = standard_subset(config)
  full = index_fn(config.data, standard is not None)
  test = held_out.test_data(config.data, config.test_split, selects_on_validation=True)
  if not full.ids:
    raise ValueError(f"The training split {config.data.split!r} of {config.data.source!r} "
                     "is empty.")
  if standard is not None:
    train = dataclasses.replace(config.data, source=standard, split="train")
    labelled = index_fn(train, True)
    taken = set(labelled.file_names or ())
    # Validation images come from the rest of imagenet2012/train (never trained on).
    rest = np.array([i for i, f in enumerate(full.file_names or full.ids) if f not in taken],
                    np.int64)
    count = validation_count(config, len(full.ids))
    if count > len(rest):
      raise ValueError(f"Only {len(rest)} training images lie outside {standard}; "
                       f"cannot hold out {count} for validation.")
    val = rest[take_stratified(full.labels[rest], count, config.seed)]
    return Subsets(config.label_fraction, config.seed, train, labelled.ids,
                   config.data, tuple(full.ids[i] for i in val), test)
  if held_out.has_validation(config.data):
    validation = dataclasses.replace(config.data, split="validation")
    keep = balanced_subset(full.labels, config.label_fraction, config.seed + 1)
    return Subsets(config.label_fraction, config.seed, config.data,
                   tuple(full.ids[i] for i in keep), validation,
                   index_fn(validation, False).ids, test)
  count = validation_count(config, len(full.ids))
  val = take_stratified(full.labels, count, config.seed)
  rest = np.setdiff1d(np.arange(len(full.ids)), val)
  # A different stream for the second draw, so changing V does not shift it
  # in lockstep with the first.
  keep = rest[balanced_subset(full.labels[rest], config.label_fraction, config.seed + 1)]
  return Subsets(config.label_fraction, config.seed, config.data,
                 tuple(full.ids[i] for i in keep), config.data,
                 tuple(full.ids[i] for i in val), test)


def write_subsets(subsets: Subsets, path: str) -> None:
  results.write_text(path, json.dumps(subsets.to_json()))


def read_subsets(path: str) -> Subsets:
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"Subset file {path} not found; pass a subset.json written "
                            "by an earlier run (in its output_dir).")
  with tf.io.gfile.GFile(path) as f:
    try:
      return Subsets.from_json(json.load(f))
    except (KeyError, ValueError, TypeError) as e:
      raise ValueError(f"{path} is not a subset file written by cpc_tf.eval.subsets "
                       f"({type(e).__name__}: {e}).") from e


def resolve(config: SubsetConfig, output_dir: str, subset_file: str | None = None,
            index_fn=read_index, write: bool = True) -> Subsets:
  """The run's subsets: from `subset_file`, else output_dir's (a resumed run), else drawn.

  The result is (re)written to <output_dir>/subset.json unless `write` is
  False (the other workers of a multi-worker run draw the same subsets). A
  file whose label fraction differs from the config's is refused.
  """
  own = os.path.join(output_dir, SUBSET_FILE)
  path = subset_file or (own if tf.io.gfile.exists(own) else None)
  if path is not None:
    subsets = read_subsets(path)
    if not np.isclose(subsets.label_fraction, config.label_fraction):
      raise ValueError(
          f"{path} holds a {subsets.label_fraction} label fraction but this run asks for "
          f"{config.label_fraction}. Pass --label_fraction={subsets.label_fraction}, or "
          "another --subset_file / --output_dir.")
  else:
    subsets = make_subsets(config, index_fn)
  if write:
    write_subsets(subsets, own)
  return subsets
