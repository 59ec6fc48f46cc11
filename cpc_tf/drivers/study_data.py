"""The claim study on any labelled source: one dataset for every stage, checked first.

Glossary: S image side in pixels (the classifiers' input, the pre-training crop's
target), P patch size, s stride, R the fewest patch rows the CPC head needs
(`HeadConfig.min_grid_rows`), N training images, n_c of them in class c, V the
validation images carved from them, f the smallest label fraction.

`for_dataset` rewrites a StudyConfig for a dataset (no I/O): pre-training, linear
evaluation and both few-label protocols read the same source with the same test
split settings, so pre-training's "train" split of a folder leaves out exactly the
images every protocol tests on (`cpc_tf.data.splits`). `check` then reads the
file listing and the image headers (cached: the pipelines reuse the scan) and
refuses, in one line that names the fix, a study that could not run or would
test on training images. Flags are applied between the two, so nothing a user
sets is overwritten and what runs is what was checked.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
import statistics

import numpy as np

from cpc_tf import configs
from cpc_tf.configs import DataConfig, GridConfig, HeadConfig, StudyConfig, SubsetConfig
from cpc_tf.data import DataError, folders, splits
from cpc_tf.drivers import study
from cpc_tf.eval import held_out, subsets

FOLDER_PREFIX = "folder:"
DEFAULT_TEST_SPLIT = "test"  # a folder's held-out split (held_out); most TFDS sets'
# A validation count chosen for the preset's data (500 of Fashion-MNIST's 60k)
# means nothing for another dataset: the few-label protocols carve this share
# of the training images instead (class-stratified, as the count would be).
VALIDATION_FRACTION = 0.1
# Fields that name the data and its test split: every stage must agree on them,
# or pre-training could read images the protocols test on.
TEST_FIELDS = ("test_path", "test_fraction", "split_seed")
IDENTITY_FIELDS = ("source", "path", "data_dir", *TEST_FIELDS)
# Stage -> dotted path of its DataConfig in StudyConfig.
DATA_PATHS = {"pretrain": "pretrain.data", "linear": "linear.data",
              "efficient": "efficient.subset.data",
              "supervised": "supervised.subset.data"}
TEST_SPLIT_PATHS = {"linear": "linear.test_split", "efficient": "efficient.subset.test_split",
                    "supervised": "supervised.subset.test_split"}


@dataclasses.dataclass(frozen=True)
class Summary:
  """What `check` found; `describe` is the line launch/study.py prints."""

  source: str
  path: str | None
  layout: str | None  # a folder's test layout (cpc_tf.data.splits.LAYOUTS)
  images_per_class: dict | None  # class name -> n_c training images (folders)
  test_images: int | None
  median_side: int | None  # shorter side, pixels, of the training images
  image_size: int  # S the classifiers see

  def describe(self) -> str:
    if self.images_per_class is None:
      return f"[study] data: {self.source}, images resized to {self.image_size} px"
    counts = sorted(self.images_per_class.values())
    return (f"[study] data: image folder {self.path}: {len(counts)} classes, "
            f"{sum(counts)} training images ({counts[0]}-{counts[-1]} per class), "
            f"{self.test_images} test images ({self.layout}); median shorter side "
            f"{self.median_side} px, resized to {self.image_size} px")


def parse_dataset(dataset: str) -> dict:
  """'folder:PATH', a path, 'fashion_mnist' or a TFDS name -> {"source", "path"}.

  The rule of launch/pretrain.py's --dataset: TFDS names may hold "/"
  (imagenet2012_subset/1pct), so only explicit or existing paths are folders.
  """
  if dataset.startswith(FOLDER_PREFIX):
    path = dataset[len(FOLDER_PREFIX):]
    if not path:
      raise ValueError("--dataset=folder: needs a path, e.g. --dataset=folder:/data/images.")
    return {"source": "folder", "path": os.path.expanduser(path)}
  if not dataset:
    raise ValueError("--dataset is empty: give folder:/path, a TFDS name or fashion_mnist.")
  if dataset.startswith(("/", ".", "~")) or os.path.isdir(dataset):
    return {"source": "folder", "path": os.path.expanduser(dataset)}
  return {"source": dataset, "path": None}


def current_dataset(config: StudyConfig) -> str:
  """The --dataset value that names config's pre-training data (`parse_dataset`'s inverse)."""
  data = config.pretrain.data
  return FOLDER_PREFIX + data.path if data.source == "folder" else data.source


def smallest_image(grid: GridConfig, head: HeadConfig) -> int:
  """The fewest pixels a side needs for R rows of P px patches at stride s."""
  return grid.patch_size + (head.min_grid_rows - 1) * grid.stride


def grid_for(grid: GridConfig, head: HeadConfig, image_size: int) -> GridConfig:
  """The pre-training grid for S px images: the preset's patches and stride, the
  largest crop <= S they tile, and the preset's margin between resize and crop.

  ValueError (naming the smallest S) when S cannot hold R rows of patches.
  """
  need = smallest_image(grid, head)
  if image_size < need:
    raise ValueError(
        f"--image_size={image_size} is too small for the preset's patch grid: "
        f"{grid.patch_size} px patches at stride {grid.stride} need {head.min_grid_rows} "
        f"rows (steps_to_predict={head.steps_to_predict}), i.e. {need} px; pass "
        f"--image_size>={need}.")
  crop = grid.patch_size + (image_size - grid.patch_size) // grid.stride * grid.stride
  margin = max(0, grid.resize_to - grid.image_size)  # supp. A: 300 -> crop 260
  return dataclasses.replace(grid, image_size=crop, resize_to=image_size + margin)


def with_image_size(config: StudyConfig, image_size: int) -> StudyConfig:
  """Classifiers on S px images, pre-training on the grid `grid_for` derives."""
  if image_size <= 0:
    raise ValueError(f"--image_size={image_size}: give a side in pixels > 0.")
  pre = config.pretrain.model
  return configs.replace(config, **{
      "pretrain.model.grid": grid_for(pre.grid, pre.head, image_size),
      "efficient.image_size": image_size, "supervised.image_size": image_size,
      "pixels.image_size": image_size})


def for_dataset(config: StudyConfig, dataset: str, image_size: int | None = None, *,
                data_dir: str | None = None, test_split: str | None = None
                ) -> StudyConfig:
  """`config` with every stage reading `dataset` (module doc); no I/O.

  dataset: as `parse_dataset`. image_size: S, or None to keep the preset's sizes
  (the images are resized to them). test_split: the split every protocol tests
  on; None is "test" (a folder's held-out split: its test/ folder, a separate
  test folder, or the seeded class-stratified share carved out of its images).
  The test-split settings (test_path, test_fraction, split_seed) are the
  preset's pre-training data's, shared by every stage. A folder is read whole
  (max_examples 0: its first files would be its first classes). A dataset other
  than the preset's switches the kNN probe off unless it has its own source (its
  default memory and query sets need 375 labelled images), and a few-label
  validation count becomes a share (VALIDATION_FRACTION).
  """
  where = parse_dataset(dataset)
  base = config.pretrain.data
  test_split = test_split or DEFAULT_TEST_SPLIT
  identity = {"source": where["source"], "path": where["path"], "data_dir": data_dir,
              "split": "train", **{k: getattr(base, k) for k in TEST_FIELDS}}
  changes = {}
  for path in DATA_PATHS.values():
    for key, value in identity.items():
      changes[f"{path}.{key}"] = value
    if where["source"] == "folder":
      changes[f"{path}.max_examples"] = 0
  for path in TEST_SPLIT_PATHS.values():
    changes[path] = test_split
  if (where["source"], where["path"]) != (base.source, base.path):
    if not config.pretrain.probe.source:
      changes["pretrain.probe.every_steps"] = 0
    for protocol in ("efficient", "supervised"):
      if getattr(config, protocol).subset.validation_fraction == 0:
        changes[f"{protocol}.subset.validation_fraction"] = VALIDATION_FRACTION
  config = configs.replace(config, **changes)
  _check_test_split(config)
  return config if image_size is None else with_image_size(config, image_size)


def _get(config, dotted: str):
  for part in dotted.split("."):
    config = getattr(config, part)
  return config


def _split_names(split: str) -> set[str]:
  """'train[:10%]+validation' -> {'train', 'validation'} (TFDS split syntax)."""
  return {re.sub(r"\[.*\]$", "", part.strip()) for part in split.split("+")}


def _check_same_data(config: StudyConfig) -> None:
  first = config.pretrain.data
  for path in DATA_PATHS.values():
    data = _get(config, path)
    for key in IDENTITY_FIELDS:
      if getattr(data, key) != getattr(first, key):
        raise ValueError(
            f"{path}.{key}={getattr(data, key)!r} but pretrain.data.{key}="
            f"{getattr(first, key)!r}: every stage must read the same data and test split, "
            "or pre-training could train on test images; set it for every stage "
            "(--dataset / --override for each) or drop the override.")


def _check_test_split(config: StudyConfig) -> None:
  """Refuses a test split that is (part of) a split some stage trains on."""
  trained = {f"{p}.split": _get(config, p).split for p in DATA_PATHS.values()}
  for path in TEST_SPLIT_PATHS.values():
    test = _get(config, path)
    for where, split in trained.items():
      shared = _split_names(test) & _split_names(split)
      if shared:
        raise ValueError(
            f"{path}={test!r} and {where}={split!r} share {sorted(shared)[0]!r}: the test "
            "images would be training images. Test on a held-out split (--test_split="
            f"{DEFAULT_TEST_SPLIT} for an image folder; e.g. validation for imagenet2012).")


def check(config: StudyConfig) -> Summary:
  """Refuses, with the fix, a study that cannot run on its data (module doc).

  Folders: class sub-folders, a held-out test split that holds no training
  image, enough images per class for the smallest label fraction and the
  validation carves, images large enough for the patch grid. Every source: one
  dataset for every stage, a test split no stage trains on. Raises ValueError
  (DataError for the folder's contents).
  """
  _check_same_data(config)
  _check_test_split(config)
  data = config.pretrain.data
  size = config.efficient.image_size
  if data.source != "folder":
    return Summary(data.source, data.path, None, None, None, None, size)
  train = resolve_train(config.linear.data)
  for stage in ("linear", "efficient", "supervised"):
    held_out.test_data(_get(config, DATA_PATHS[stage]), _get(config, TEST_SPLIT_PATHS[stage]),
                       selects_on_validation=stage != "linear")
  scan = folders.scan(train.root, True, classes=train.classes)
  kept = [i for i, f in enumerate(scan.files) if train.keeps(f)]
  counts = {name: 0 for name in scan.class_names}
  for i in kept:
    counts[scan.class_names[scan.labels[i]]] += 1
  empty = [c for c, k in counts.items() if k == 0]
  if empty:
    raise DataError(f"Image folder {data.path!r}: class {empty[0]!r} has no usable "
                    "training image; add images to it or remove its folder.")
  median = int(statistics.median(min(scan.sizes[i]) for i in kept))
  _check_sides(config, data.path, median)
  _check_counts(config, data.path, counts)
  layout = splits.folder_splits(config.linear.data)
  return Summary("folder", data.path, layout.layout, counts, len(layout.ids["test"]),
                 median, size)


def resolve_train(data: DataConfig) -> splits.FolderSplit:
  """The folder's training split; DataError naming the layout when it has no classes."""
  if not os.path.isdir(data.path or ""):
    raise DataError(f"Image folder {data.path!r} does not exist or is not a directory; "
                    "pass --dataset=folder:PATH with PATH/<class>/<image>.")
  train = splits.resolve(dataclasses.replace(data, split="train", test_fraction=0.0,
                                             test_path=None), labelled=False)
  if not folders.sub_folders(train.root):
    raise DataError(
        f"Image folder {train.root!r} has no class sub-folders; the study's classifiers "
        "need labels: put each class's images in PATH/<class>/ (or PATH/train/<class>/ "
        "and PATH/test/<class>/).")
  return splits.resolve(data, labelled=True)


def _check_counts(config: StudyConfig, path: str, counts: dict) -> None:
  """Every class keeps a training image after each validation carve, and in every
  cell (label fraction, subset seed) gets at least one labelled image: the
  protocols' own draws (`cpc_tf.eval.subsets`), made here on the folder's ids."""
  names = tuple(counts)
  index = functools.lru_cache(maxsize=None)(subsets.read_index)
  v = config.linear.validation_size
  if v:
    labels = index(config.linear.data).labels
    held = subsets.take_stratified(labels, min(v, len(labels)), config.linear.seed)
    left = np.bincount(np.delete(labels, held), minlength=len(names))
    if left.min() < 1:
      name = names[int(left.argmin())]
      raise DataError(
          f"Image folder {path!r}: class {name!r} has {counts[name]} training image(s) and "
          f"linear evaluation's validation carve ({v} of {len(labels)}) leaves it none; add "
          f"images or carve fewer (--override=linear.validation_size="
          f"{max(1, len(labels) // 10)}).")
  for protocol in ("efficient", "supervised"):
    subset = getattr(config, protocol).subset
    for fraction, seed in study.cells(config):
      cell = dataclasses.replace(subset, label_fraction=fraction, seed=seed)
      try:
        drawn = subsets.make_subsets(cell, index)
      except ValueError as e:  # validation_count: a carve that leaves nothing
        raise DataError(f"Image folder {path!r}, {protocol}: {e} (--override="
                        f"{protocol}.subset.validation_fraction=...)") from None
      full = index(subset.data)
      label_of = dict(zip(full.ids, full.labels.tolist()))
      got = np.bincount([label_of[i] for i in drawn.train_ids], minlength=len(names))
      if got.min() >= 1:
        continue
      name = names[int(got.argmin())]
      carved = {i for i in drawn.validation_ids} if drawn.validation == subset.data else set()
      rest = np.bincount([label_of[i] for i in full.ids if i not in carved],
                         minlength=len(names))
      if rest.min() < 1:
        raise DataError(
            f"Image folder {path!r}: class {name!r} has {counts[name]} training image(s) and "
            f"the {protocol} validation carve ({validation_subset(subset)}) leaves it none; "
            f"add images, or carve less (--override={protocol}.subset.validation_fraction"
            "=... for both few-label protocols).")
      need = labelled_fraction(int(rest.sum()), int(rest.min()))
      smallest = names[int(rest.argmin())]
      raise DataError(
          f"Image folder {path!r}: at label fraction {fraction:g} (subset seed {seed}) "
          f"{len(drawn.train_ids)} of {int(rest.sum())} training images are labelled and "
          f"class {name!r} gets none (smallest class: {smallest!r}, {counts[smallest]} "
          f"images, {int(rest.min())} after the validation carve); use --label_fractions="
          f"{need:g},1 (enough to label every class) or add images.")


def labelled_fraction(rest: int, fewest: int) -> float:
  """A label fraction, rounded up to two significant digits, whose class-stratified
  draw of `rest` images labels every class when the smallest holds `fewest`.

  `subsets.stratified_order` puts class c's first image after at most
  sum_d (r_d / (2 r_c) + 1/2) others, so ceil(rest / fewest) images (>= K, the
  number of classes) reach every class.
  """
  fraction = math.ceil(rest / fewest) / rest
  digits = 1 - math.floor(math.log10(fraction))
  return min(1.0, math.ceil(fraction * 10 ** digits - 1e-9) / 10 ** digits)


def _check_sides(config: StudyConfig, path: str, median: int) -> None:
  """Most images must hold the patch grid's R rows without being upscaled."""
  model = config.pretrain.model
  need = smallest_image(model.grid, model.head)
  if median >= need:
    return
  hint = _smaller_patches(model.grid, model.head, median)
  fix = (f"smaller patches (--override=pretrain.model.grid.patch_size={hint[0]} "
         f"--override=pretrain.model.grid.stride={hint[1]})" if hint else
         "a head that predicts fewer rows ahead")
  raise DataError(
      f"Image folder {path!r}: its images are too small for the patch grid (median "
      f"shorter side {median} px; {model.grid.patch_size} px patches at stride "
      f"{model.grid.stride} in {model.head.min_grid_rows} rows need {need} px); use "
      f"larger images, or {fix}.")


def _smaller_patches(grid: GridConfig, head: HeadConfig, side: int) -> tuple[int, int] | None:
  """The largest (patch, stride), stride in the preset's proportion, that puts R rows
  in `side` px and tiles the crop; None if none does."""
  for patch in range(grid.patch_size - 1, 0, -1):
    stride = max(1, round(grid.stride * patch / grid.patch_size))
    if (patch + (head.min_grid_rows - 1) * stride <= side
        and (grid.image_size - patch) % stride == 0):
      return patch, stride
  return None


def validation_subset(subset: SubsetConfig) -> str:
  """How `subset` selects models, for error messages."""
  if subset.validation_fraction > 0:
    return f"a {subset.validation_fraction:g} share of the training images"
  return f"{subset.validation_size} training images"
