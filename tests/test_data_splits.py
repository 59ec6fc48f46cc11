"""cpc_tf.data.splits: a folder's train / validation / test sets are disjoint.

Issue 9: with --dataset=folder:..., "test" accuracy was measured on the whole
folder (its training images included) and --test_split=nonexistent was
accepted. Every layout is checked through the loaders the protocols use
(example_ids, efficient_eval_dataset, pretrain_dataset), not only through
`folder_splits`.
"""

import dataclasses
import os

import numpy as np
import pytest
from PIL import Image

from cpc_tf.configs import AugmentConfig, DataConfig, GridConfig
from cpc_tf.data import (DataError, class_names, efficient_eval_dataset, example_ids,
                         folder_splits, num_examples, pretrain_dataset)
from cpc_tf.data import splits

OFF = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                    inception_color_p=0.0, grayscale_p=0.0)
SMALL = GridConfig(image_size=24, patch_size=8, stride=8, resize_to=28)


def _images(folder, counts, seed=0):
  """counts: {class: n} -> n small PNGs per class folder under `folder`."""
  rng = np.random.default_rng(seed)
  for name, n in counts.items():
    os.makedirs(os.path.join(folder, name), exist_ok=True)
    for i in range(n):
      pixels = (rng.random((12, 12, 3)) * 255).astype(np.uint8)
      Image.fromarray(pixels).save(os.path.join(folder, name, f"{name}{i:02d}.png"))


def _ids(data, split):
  """Absolute paths of the examples every loader reads for `split`."""
  d = dataclasses.replace(data, split=split)
  ids = example_ids(d)
  assert num_examples(d, labelled=True) == len(ids)
  root = splits.resolve(d, labelled=True).root
  return {os.path.realpath(os.path.join(root, i)) for i in ids}


def _loaded_labels(data, split):
  d = dataclasses.replace(data, split=split)
  return np.concatenate([y.numpy() for _, y in efficient_eval_dataset(
      d, 64, image_size=8)])


def test_carved_test_split_is_held_out_of_train_stratified_and_seeded(tmp_path):
  _images(tmp_path, {"cat": 20, "dog": 10, "fox": 2})
  data = DataConfig(source="folder", path=str(tmp_path), test_fraction=0.2, split_seed=3)
  train, test = _ids(data, "train"), _ids(data, "test")
  assert not train & test and len(train) + len(test) == 32
  labels = _loaded_labels(data, "test")
  assert sorted(np.bincount(labels, minlength=3)) == sorted([4, 2, 1])  # 20%, at least one
  assert len(_loaded_labels(data, "train")) == 25
  # Deterministic from the seed; another seed draws another split.
  assert _ids(data, "test") == test
  assert _ids(dataclasses.replace(data, split_seed=4), "test") != test
  # Pre-training on the folder's "train" never reads a held-out test image.
  pre = dataclasses.replace(data, split="train")
  assert splits.resolve(pre, labelled=False).drop == splits.carve(str(tmp_path), 0.2, 3)
  batches = list(pretrain_dataset(pre, SMALL, OFF, 5, seed=0, repeat=False))
  assert sum(b.shape[0] for b in batches) == 25
  doc = folder_splits(data).to_json()
  assert doc["layout"] == "carved" and doc["ids"]["validation"] is None
  assert len(doc["ids"]["test"]) == 7 and not set(doc["ids"]["test"]) & set(doc["ids"]["train"])


def test_carve_is_stable_when_images_are_added(tmp_path):
  _images(tmp_path, {"a": 40})
  before = splits.carve(str(tmp_path), 0.25, 0)
  _images(tmp_path / "more", {"a": 0})
  Image.new("RGB", (12, 12)).save(tmp_path / "a" / "zz_new.png")
  splits.carve.cache_clear()
  after = splits.carve(str(tmp_path), 0.25, 0)
  assert len(before & after) >= len(before) - 1  # at most the new image takes one place


def test_split_folders_with_a_class_missing_from_test(tmp_path):
  _images(tmp_path / "train", {"ant": 3, "bee": 3, "cow": 3})
  _images(tmp_path / "val", {"ant": 1, "bee": 1, "cow": 1}, seed=1)
  _images(tmp_path / "test", {"ant": 2, "cow": 2}, seed=2)  # no bee: cow keeps label 2
  data = DataConfig(source="folder", path=str(tmp_path))
  sets = {s: _ids(data, s) for s in splits.SPLITS}
  assert [len(sets[s]) for s in splits.SPLITS] == [9, 3, 4]
  assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["validation"])
  assert class_names(dataclasses.replace(data, split="test")) == ("ant", "bee", "cow")
  np.testing.assert_array_equal(_loaded_labels(data, "test"), [0, 0, 2, 2])
  assert folder_splits(data).layout == "split_folders"


def test_named_test_folder_and_its_mistakes(tmp_path):
  _images(tmp_path / "mine", {"x": 4, "y": 4})
  _images(tmp_path / "held_out", {"x": 2, "y": 2}, seed=5)
  data = DataConfig(source="folder", path=str(tmp_path / "mine"),
                    test_path=str(tmp_path / "held_out"))
  train, test = _ids(data, "train"), _ids(data, "test")
  assert len(train) == 8 and len(test) == 4 and not train & test  # nothing carved
  with pytest.raises(DataError, match="overlap"):
    _ids(dataclasses.replace(data, test_path=str(tmp_path / "mine" / "x")), "test")
  with pytest.raises(DataError, match="test_path.*does not exist"):
    _ids(dataclasses.replace(data, test_path=str(tmp_path / "nope")), "test")
  _images(tmp_path / "zoo", {"x": 1, "zebra": 1})
  with pytest.raises(DataError, match="class folder.*zebra.*training folder lacks"):
    _ids(dataclasses.replace(data, test_path=str(tmp_path / "zoo")), "test")


def test_a_linked_duplicate_across_splits_is_refused(tmp_path):
  _images(tmp_path / "train", {"a": 3})
  os.makedirs(tmp_path / "test" / "a")
  os.symlink(tmp_path / "train" / "a" / "a00.png", tmp_path / "test" / "a" / "same.png")
  with pytest.raises(DataError, match="train and test splits.*share 1 file"):
    folder_splits(DataConfig(source="folder", path=str(tmp_path)))


def test_unknown_or_missing_splits_are_refused(tmp_path):
  _images(tmp_path, {"a": 3, "b": 3})
  data = DataConfig(source="folder", path=str(tmp_path))
  with pytest.raises(DataError, match="splits train, validation, test, not 'nonexistent'"):
    example_ids(dataclasses.replace(data, split="nonexistent"))
  with pytest.raises(DataError, match="no 'validation' split.*read another split"):
    example_ids(dataclasses.replace(data, split="validation"))
  no_test = dataclasses.replace(data, test_fraction=0.0)
  assert len(example_ids(no_test)) == 6
  with pytest.raises(DataError, match="no 'test' split"):
    example_ids(dataclasses.replace(no_test, split="test"))
  with pytest.raises(DataError, match="test_fraction=1.0"):
    example_ids(dataclasses.replace(data, test_fraction=1.0))
