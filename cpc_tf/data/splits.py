"""A user's image folder -> disjoint train / validation / test example sets.

Glossary: N images in the training pool, n_c of them in class c, f the test
fraction (DataConfig.test_fraction). `DataConfig.split` of a folder source is
one of SPLITS; ids are file paths relative to the folder the split is read
from (`FolderSplit.root`).

Where each split comes from, first match wins:
  train       root/train/ if root holds split folders (see below), else root;
              minus the carved test ids when the test split is carved.
  validation  root/validation/ (or root/val/); otherwise the folder has none
              and the protocols hold one out of train (cpc_tf subsets).
  test        root/test/; else DataConfig.test_path, a separate folder; else,
              when f > 0, a held-out share of the training pool ("carved").
Root "holds split folders" when its sub-folders include train/ and are all
split names; each split folder then holds class folders as usual. Validation
and test folders take the training folder's class names and order, so a class
missing from the test folder does not shift the labels of the others.

The carve is class-stratified and seeded: within each class every id is ranked
by a hash of (DataConfig.split_seed, id) and the round(f * n_c) lowest form the
test split (at least one of a class with two or more images, never all of it).
A hash rank rather than a permutation keeps the split stable when images are
added: an existing image changes side only if a new one outranks it. The carve
lists names only (no decoding), so it is identical for labelled and unlabelled
reads: pre-training on a folder's "train" split never sees its test images.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os

from cpc_tf.configs import DataConfig
from cpc_tf.data import folders
from cpc_tf.data.errors import DataError

SPLITS = ("train", "validation", "test")
LAYOUTS = ("split_folders", "test_path", "carved", "no_test")
_VALIDATION_FOLDERS = ("validation", "val")


@dataclasses.dataclass(frozen=True)
class FolderSplit:
  """Where one split of a folder source is read from and which of its ids it keeps."""

  name: str  # one of SPLITS
  layout: str  # one of LAYOUTS: how the test split is found
  root: str  # the folder read; ids are relative to it
  classes: tuple[str, ...] | None  # class names (the training folder's) when labelled
  keep: frozenset[str] | None = None  # only these ids (carved test)
  drop: frozenset[str] = frozenset()  # never these ids (carved test, out of train)

  def keeps(self, example_id: str) -> bool:
    if self.keep is not None:
      return example_id in self.keep
    return example_id not in self.drop


@dataclasses.dataclass(frozen=True)
class FolderSplits:
  """All splits of a labelled folder: ids checked to be disjoint (`folder_splits`)."""

  layout: str
  roots: dict  # split name -> folder its ids are relative to (None: no such split)
  ids: dict  # split name -> tuple of ids, or None when the folder has no such split
  test_fraction: float
  split_seed: int

  def to_json(self) -> dict:
    """The id lists, e.g. for <output_dir>/<file>.json beside the label subsets."""
    return {"layout": self.layout, "test_fraction": self.test_fraction,
            "split_seed": self.split_seed, "roots": dict(self.roots),
            "ids": {k: (None if v is None else list(v)) for k, v in self.ids.items()}}


def _check(data: DataConfig) -> str:
  if not data.path:
    raise DataError("DataConfig.source='folder' needs DataConfig.path, the image folder.")
  if not os.path.isdir(data.path):
    raise DataError(f"Image folder {data.path!r} does not exist or is not a directory; "
                    "set DataConfig.path to a folder of images.")
  if data.split not in SPLITS:
    raise DataError(f"Image folders have the splits {', '.join(SPLITS)}, not "
                    f"{data.split!r} (slices are a TFDS feature); set DataConfig.split "
                    "(--split / --test_split) to one of them.")
  if not 0.0 <= data.test_fraction < 1.0:
    raise DataError(f"DataConfig.test_fraction={data.test_fraction}: must lie in [0, 1), "
                    "e.g. 0.1 to hold out 10% of each class as the test split.")
  return os.path.normpath(data.path)


def _split_folders(root: str) -> dict[str, str]:
  """{split name: folder} when root holds split folders (module doc), else {}."""
  subs = folders.sub_folders(root)
  # A class named "train" beside other classes (root/<class>/...) stays a class.
  if "train" not in subs or not set(subs) <= {"train", "test", *_VALIDATION_FOLDERS}:
    return {}
  found = {"train": os.path.join(root, "train")}
  vals = [v for v in _VALIDATION_FOLDERS if v in subs]
  if len(vals) > 1:
    raise DataError(f"Image folder {root!r} holds both validation/ and val/; keep one.")
  if vals:
    found["validation"] = os.path.join(root, vals[0])
  if "test" in subs:
    found["test"] = os.path.join(root, "test")
  return found


def _inside(path: str, parent: str) -> bool:
  path, parent = os.path.realpath(path), os.path.realpath(parent)
  return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


def _layout(data: DataConfig) -> tuple[str, dict[str, str]]:
  """-> (layout, {split: folder}) for every split the folder has."""
  root = _check(data)
  found = _split_folders(root) or {"train": root}
  pool = found["train"]
  if "test" in found:
    if data.test_path:
      raise DataError(f"Image folder {root!r} holds a test/ folder and DataConfig.test_path="
                      f"{data.test_path!r} names another; keep one of them.")
    return "split_folders", found
  if data.test_path:
    test = os.path.normpath(data.test_path)
    if not os.path.isdir(test):
      raise DataError(f"Test folder {test!r} (DataConfig.test_path, --test_path) does not "
                      "exist or is not a directory.")
    if _inside(test, pool) or _inside(pool, test):
      raise DataError(f"Test folder {test!r} and training folder {pool!r} overlap, so test "
                      "images would be trained on; give two separate folders.")
    return "test_path", dict(found, test=test)
  if data.test_fraction > 0:
    return "carved", dict(found, test=pool)
  return "no_test", found


@functools.lru_cache(maxsize=16)
def carve(pool: str, test_fraction: float, seed: int) -> frozenset[str]:
  """Ids (relative to `pool`, a labelled folder) of the carved test split (module doc)."""
  by_class: dict[int, list[str]] = {}
  for example_id, label in folders.class_files(pool):
    by_class.setdefault(label, []).append(example_id)
  test = []
  for ids in by_class.values():
    n = len(ids)
    count = min(n - 1, max(1, round(test_fraction * n))) if n >= 2 else 0
    test += sorted(ids, key=lambda i: _rank(seed, i))[:count]
  return frozenset(test)


def _rank(seed: int, example_id: str) -> bytes:
  return hashlib.blake2b(f"{seed}/{example_id}".encode(), digest_size=8).digest()


def resolve(data: DataConfig, labelled: bool) -> FolderSplit:
  """Where `data.split` of the folder `data.path` is read from (module doc)."""
  layout, found = _layout(data)
  pool = found["train"]
  if data.split not in found:
    what = {"validation": "no validation/ (or val/) folder beside train/",
            "test": "no test/ folder, no DataConfig.test_path and test_fraction=0"}
    raise DataError(
        f"Image folder {data.path!r} has no {data.split!r} split ({what[data.split]}); "
        f"its splits: {', '.join(s for s in SPLITS if s in found)}. Add the folder, or "
        f"read another split (the held-out test split of a folder is 'test').")
  classes = folders.sub_folders(pool) if labelled else None
  root = found[data.split]
  if layout != "carved" or data.split not in ("train", "test"):
    return FolderSplit(data.split, layout, root, classes)
  if not folders.sub_folders(pool):
    if data.split == "test" or labelled:
      raise DataError(
          f"Image folder {pool!r} has no class sub-folders, so no class-stratified test "
          "split can be held out of it; add root/<class>/ folders, a test folder "
          "(DataConfig.test_path), or set test_fraction=0.")
    return FolderSplit(data.split, layout, root, classes)  # flat unlabelled: all of it
  test = carve(pool, float(data.test_fraction), int(data.split_seed))
  if data.split == "test":
    return FolderSplit("test", layout, root, classes, keep=test)
  return FolderSplit("train", layout, root, classes, drop=test)


def folder_splits(data: DataConfig) -> FolderSplits:
  """Ids of every split of the labelled folder `data.path` (undecoded, unchecked files).

  Validation is None when the folder has no validation folder, test None when
  it has no test split (layout "no_test"). Raises DataError if two splits
  share a file (compared by real path, so symlinks count).
  """
  layout, found = _layout(data)
  roots, ids, real = {}, {}, {}
  for name in SPLITS:
    if name not in found:
      roots[name], ids[name] = None, None
      continue
    split = resolve(dataclasses.replace(data, split=name), labelled=True)
    listed = [i for i, _ in folders.class_files(split.root) if split.keeps(i)]
    if split.classes is not None and name != "train":
      unknown = sorted(set(folders.sub_folders(split.root)) - set(split.classes))
      if unknown:
        raise DataError(f"Image folder {split.root!r} has class folder(s) "
                        f"{', '.join(unknown)} that the training folder lacks.")
    roots[name], ids[name] = split.root, tuple(listed)
    real[name] = {os.path.realpath(os.path.join(split.root, i)) for i in listed}
  names = [n for n in SPLITS if n in real]
  for a in names:
    for b in names[names.index(a) + 1:]:
      shared = real[a] & real[b]
      if shared:
        raise DataError(f"The {a} and {b} splits of {data.path!r} share {len(shared)} "
                        f"file(s), e.g. {sorted(shared)[0]}; a test image must never be "
                        "a training image. Remove the duplicates or the links.")
  return FolderSplits(layout, roots, ids, float(data.test_fraction), int(data.split_seed))
