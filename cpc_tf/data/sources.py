"""DataConfig -> a `Source`: an undecoded tf.data stream plus what is known about it.

Glossary: N examples in the (sliced) split, K classes. A source's elements are
dicts with
  "image":   encoded image bytes (TFDS), a file path (folders) or uint8
             [H, W, C] (Fashion-MNIST);
  "label":   int64 class index (-1 when the split has no labels);
  "id":      string, stable per example: TFDS `tfds_id`, the file path relative
             to the folder, or the index for Fashion-MNIST;
  "objects": (TFDS detection data only) the builder's `objects` dict.
Images stay encoded (or unread) until after shuffling, so the shuffle buffer
holds bytes or paths rather than decoded pixels; `Source.decode` turns an
element's image into [H, W, 3] float32 in [0, 1].

`DataConfig.source`: "fashion_mnist", "folder" (`DataConfig.path`; its splits
"train" / "validation" / "test" as in `splits`; for detection, `with_objects`,
a VOCdevkit folder read by `voc_folder`, split e.g. "trainval"), or any TFDS
name with an image feature, e.g. "imagenet2012", "imagenet2012_subset/1pct",
"stl10" (split "unlabelled" for pre-training), "cifar10", "voc/2007".
"""

from __future__ import annotations

import dataclasses
import difflib
import logging
import os
import re
from typing import Callable

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from cpc_tf.configs import DataConfig
from cpc_tf.data import (decode_failures, fashion_mnist, folders, images, network, splits,
                         voc_folder)
from cpc_tf.data.errors import DataError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Source:
  """One split, ready for a pipeline; elements as in the module doc."""

  dataset: tf.data.Dataset  # storage order (TFDS file order shuffled if shuffle_files)
  decode: Callable[[tf.Tensor], tf.Tensor]  # element["image"] -> [H, W, 3] float32
  num_examples: int
  class_names: tuple[str, ...] | None
  ids: tuple[str, ...] | None  # all ids in order when cheap to know (not TFDS)
  sharded: bool  # True when `input_context` sharding already happened (TFDS files)
  # (element["image"], element["id"]) -> ([H, W, 3] float32, [] bool ok): a decode
  # that names and drops failing files instead of raising (folders).
  checked_decode: Callable[[tf.Tensor, tf.Tensor], tuple[tf.Tensor, tf.Tensor]] | None = None

  @property
  def num_classes(self) -> int | None:
    return None if self.class_names is None else len(self.class_names)


def load(data: DataConfig, *, labelled: bool = False, shuffle_files: bool = False,
         seed: int = 0, input_context: tf.distribute.InputContext | None = None,
         on_bad_file: str = "skip", min_size: int = 0,
         with_objects: bool = False) -> Source:
  """Opens the source named by `data` (see module doc).

  `labelled` selects the class-per-sub-folder layout for folders. `min_size` is
  only used to warn about folder images that will be upscaled.
  """
  if data.source == "fashion_mnist":
    if with_objects:
      raise DataError("fashion_mnist has no boxes; detection needs 'voc/2007', a VOCdevkit "
                      "folder ('folder:/path/VOCdevkit') or 'synthetic'.")
    return _fashion_mnist(data)
  if data.source == "folder" and with_objects:
    return _voc_folder(data, on_bad_file)
  if data.source == "folder":
    return _folder(data, labelled, on_bad_file, min_size)
  return _tfds(data, shuffle_files, seed, input_context, with_objects)


def _fashion_mnist(data: DataConfig) -> Source:
  pixels, labels = fashion_mnist.load(data.split, data.path, data.data_dir)
  n = _limit(len(labels), data.max_examples)
  ids = tuple(str(i) for i in range(n))
  dataset = tf.data.Dataset.from_tensor_slices(
      {"image": pixels[:n], "label": labels[:n], "id": list(ids)})
  return Source(dataset, images.to_rgb, n, fashion_mnist.CLASS_NAMES, ids, False)


def _voc_folder(data: DataConfig, on_bad_file: str) -> Source:
  """A VOCdevkit folder (detection): paths plus the TFDS "voc" `objects` layout."""
  split = voc_folder.read_split(data.path, data.split, on_bad=on_bad_file)
  examples = split.examples[:_limit(len(split.examples), data.max_examples)]
  offsets = np.cumsum([0] + [len(e.labels) for e in examples])

  def ragged(values):
    return tf.RaggedTensor.from_row_splits(values, offsets)

  ids = tuple(e.id for e in examples)
  dataset = tf.data.Dataset.from_tensor_slices({
      "image": [e.image_path for e in examples], "id": list(ids),
      "label": np.full(len(examples), -1, np.int64),
      "objects": {
          "bbox": ragged(np.concatenate([e.boxes for e in examples]).reshape(-1, 4)),
          "label": ragged(np.concatenate([e.labels for e in examples])),
          "is_difficult": ragged(np.concatenate([e.difficult for e in examples]))}})
  return Source(dataset, lambda path: images.decode(tf.io.read_file(path)), len(examples),
                voc_folder.CLASS_NAMES, ids, False)


def _folder(data: DataConfig, labelled: bool, on_bad_file: str, min_size: int) -> Source:
  split = splits.resolve(data, labelled)
  scan = folders.scan(split.root, labelled, classes=split.classes)
  folders.report(scan, on_bad_file, min_size)
  kept = [i for i, f in enumerate(scan.files) if split.keeps(f)]
  if not kept:
    raise DataError(f"The {split.name!r} split of image folder {data.path!r} holds no "
                    f"usable image ({len(scan.files)} in {split.root}, none kept); add "
                    "images or read another split.")
  if split.drop and not labelled:
    log.info("Image folder %s: %d image(s) held out as its test split are not read.",
             split.root, len(scan.files) - len(kept))
  kept = kept[:_limit(len(kept), data.max_examples)]
  files = tuple(scan.files[i] for i in kept)
  paths = [os.path.join(scan.root, f) for f in files]
  dataset = tf.data.Dataset.from_tensor_slices({
      "image": paths,
      "label": tf.constant([scan.labels[i] for i in kept], tf.int64),
      "id": list(files)})
  # The file is read when decoded, after shuffling: a full shuffle of paths is
  # cheap, one of file contents would hold the whole folder in memory.
  decoder = decode_failures.FolderDecoder(scan.root, len(files), on_bad_file)
  decoder.probe(paths, files)
  return Source(dataset, lambda path: images.decode(tf.io.read_file(path)), len(files),
                scan.class_names, files, False, checked_decode=decoder)


def _limit(n: int, max_examples: int) -> int:
  return min(n, max_examples) if max_examples > 0 else n


# ----------------------------------------------------------------------------
# TFDS

def builder(name: str, data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """tfds.builder with a DataError naming close matches for unknown names/configs."""
  base = name.split("/")[0].split(":")[0]
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise DataError(_unknown_name(name, base)) from e
  except ValueError as e:  # a malformed name, or a known dataset with an unknown config
    if base not in tfds.list_builders(with_community_datasets=False):
      raise DataError(_unknown_name(name, base)) from e
    configs = [c.name for c in getattr(tfds.builder_cls(base), "BUILDER_CONFIGS", [])]
    raise DataError(f"TFDS dataset {base!r} has no config {name!r}: {e}. Available "
                    f"configs: {', '.join(configs) or '(none)'}.") from e


# The paper's datasets, offered first when the name is a prefix or a near miss
# of one: "imagenet" means imagenet2012, not imagenette.
PAPER_DATASETS = ("imagenet2012", "imagenet2012_subset", "stl10", "cifar10", "voc")


def close_names(base: str, known: list[str]) -> list[str]:
  """Up to 5 TFDS names close to `base`, the paper's datasets first."""
  key = base.replace("-", "_").lower()
  stem = re.sub(r"[^a-z].*", "", key)  # "imagenet_1k" -> "imagenet"
  paper = [n for n in PAPER_DATASETS if n in known and (
      n.startswith(key) or key.startswith(n) or stem == re.sub(r"[^a-z].*", "", n)
      or difflib.SequenceMatcher(None, key, n).ratio() >= 0.8)]
  close = difflib.get_close_matches(key, sorted(set(known)), n=5, cutoff=0.6)
  return list(dict.fromkeys(paper + close))[:5]


def _unknown_name(name: str, base: str) -> str:
  known = tfds.list_builders(with_community_datasets=False)
  close = close_names(base, known)
  hints = []
  for match in close:
    configs = [c.name for c in getattr(tfds.builder_cls(match), "BUILDER_CONFIGS", [])]
    hints.append(f"{match} (configs: {', '.join(configs)})" if configs else match)
  hint = f" Close names: {'; '.join(hints)}." if hints else ""
  return (f"TFDS does not know the dataset {name!r}.{hint} Set DataConfig.source to a "
          "TFDS name (see `tfds.list_builders()`), 'folder' for your own images, or "
          "'fashion_mnist'.")


def _split_names(split: str) -> list[str]:
  """'train[:10%]+validation' -> ['train', 'validation']."""
  return [re.sub(r"\[.*\]$", "", part.strip()) for part in split.split("+")]


def _check_split(b: tfds.core.DatasetBuilder, split: str) -> None:
  available = sorted(b.info.splits.keys())
  if not available:  # metadata not generated yet (e.g. under tfds.testing.mock_data)
    return
  missing = [s for s in _split_names(split) if s not in available]
  if missing:
    raise DataError(f"{b.name} has no split {missing[0]!r}; available splits: "
                    f"{', '.join(available)}. Fix DataConfig.split "
                    "(slices such as 'train[:10%]' are allowed).")


def _feature_key(b: tfds.core.DatasetBuilder, kind, preferred: str) -> str | None:
  """Top-level feature of type `kind`, preferring the key `preferred`."""
  features = b.info.features
  keys = [k for k, f in features.items() if isinstance(f, kind)]
  if preferred in keys:
    return preferred
  return keys[0] if keys else None


def _tfds(data: DataConfig, shuffle_files: bool, seed: int,
          input_context: tf.distribute.InputContext | None, with_objects: bool) -> Source:
  b = builder(data.source, data.data_dir)
  image_key = _feature_key(b, tfds.features.Image, "image")
  if image_key is None:
    raise DataError(f"TFDS dataset {data.source!r} has no image feature (features: "
                    f"{', '.join(b.info.features.keys())}); pick an image dataset.")
  label_key = _feature_key(b, tfds.features.ClassLabel, "label")
  if with_objects and "objects" not in b.info.features:
    raise DataError(f"TFDS dataset {data.source!r} has no 'objects' feature with "
                    "boxes; detection needs e.g. 'voc/2007'.")
  _check_split(b, data.split)
  split = data.split
  if data.max_examples > 0:
    split = "+".join(f"{s}[:{data.max_examples}]" if "[" not in s else s
                     for s in split.split("+"))
  try:
    network.prepare(b)
  except Exception as e:  # manual-download datasets, no network, bad data_dir
    raise DataError(
        f"TFDS dataset {data.source!r} is not prepared in data_dir={data.data_dir!r} "
        f"and could not be built ({type(e).__name__}: {e}). Run `tfds build "
        f"{data.source} --data_dir=...` where the data is reachable (ImageNet needs "
        "its tar files in <data_dir>/downloads/manual), then pass that data_dir.") from e
  if input_context is not None and _num_files(b, split) < input_context.num_input_pipelines:
    input_context = None  # too few files to give each pipeline one: shard examples later
  read_config = tfds.ReadConfig(add_tfds_id=True, shuffle_seed=seed,
                                input_context=input_context)
  dataset = b.as_dataset(split=split, shuffle_files=shuffle_files,
                         read_config=read_config,
                         decoders={image_key: tfds.decode.SkipDecoding()})

  def select(example):
    out = {"image": example[image_key], "id": example["tfds_id"],
           "label": (tf.cast(example[label_key], tf.int64) if label_key
                     else tf.constant(-1, tf.int64))}
    if with_objects:
      out["objects"] = example["objects"]
    return out

  dataset = dataset.map(select, num_parallel_calls=tf.data.AUTOTUNE)
  return Source(dataset, images.decode, _tfds_size(b, split, dataset),
                _class_names(b, label_key), None, input_context is not None)


def _class_names(b: tfds.core.DatasetBuilder, label_key: str | None) -> tuple[str, ...] | None:
  """Names of the top-level label, else of the detection objects' label (VOC)."""
  features = b.info.features
  if label_key:
    return tuple(features[label_key].names)
  objects = getattr(features["objects"], "feature", None) if "objects" in features else None
  if not isinstance(objects, tfds.features.FeaturesDict) or "label" not in objects:
    return None
  label = objects["label"]
  return tuple(label.names) if isinstance(label, tfds.features.ClassLabel) else None


def _num_files(b: tfds.core.DatasetBuilder, split: str) -> int:
  """Record files behind `split`; 0 when unknown (then examples are sharded)."""
  try:
    return len(b.info.splits[split].file_instructions)
  except (KeyError, ValueError, AssertionError):
    return 0


def _tfds_size(b: tfds.core.DatasetBuilder, split: str, dataset: tf.data.Dataset) -> int:
  try:
    return int(b.info.splits[split].num_examples)
  except (KeyError, ValueError, AssertionError):
    # No split metadata (mock data, partially prepared dirs): count the records,
    # which are still undecoded bytes here.
    return int(dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
