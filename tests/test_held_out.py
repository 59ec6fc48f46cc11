"""cpc_tf.eval.held_out: an image folder's test split is checked, recorded, reported.

Issue 9: with --dataset=folder:... the "test" accuracy was measured on the whole
folder, training images included, and --test_split=nonexistent was accepted.
`make_folder` and `check_held_out` are shared by the protocol tests (the binary
test files), which prove per protocol that no test image is trained on.
"""

import json
import os

import numpy as np
import pytest
from PIL import Image

from cpc_tf.configs import DataConfig
from cpc_tf.data import DataError
from cpc_tf.eval import held_out, results


def make_folder(root, per_class=10, classes=("ant", "bee", "cat"), splits=None, seed=0):
  """Tiny 12 px PNGs under root/<class>/ or, with `splits` ({split: per class}),
  root/<split>/<class>/. Returns root as a str."""
  rng = np.random.default_rng(seed)
  layout = splits or {None: per_class}
  for split, count in layout.items():
    for c, name in enumerate(classes):
      folder = os.path.join(str(root), *([split] if split else []), name)
      os.makedirs(folder, exist_ok=True)
      for i in range(count):
        # A class-dependent colour, so a classifier has something to learn.
        pixels = rng.integers(0, 60, (12, 12, 3)) + np.array([60 * c, 0, 0])
        Image.fromarray(pixels.astype(np.uint8)).save(
            os.path.join(folder, f"{split or 'x'}{name}{i:02d}.png"))
  return str(root)


def check_held_out(out, layout, trained_ids, root=None):
  """The run in `out` recorded `layout`, tested on its test ids only, and trained on
  none of them (`trained_ids`: ids relative to the folder's training root)."""
  splits = json.loads(open(os.path.join(out, held_out.SPLITS_FILE)).read())
  assert splits["layout"] == layout
  test_ids = splits["ids"]["test"]
  assert test_ids
  doc = results.read_results(out)
  assert doc["test"] == {"split": "test", "layout": layout, "num_examples": len(test_ids)}
  train_root, test_root = splits["roots"]["train"], splits["roots"]["test"]
  trained = {os.path.realpath(os.path.join(train_root, i)) for i in trained_ids}
  tested = {os.path.realpath(os.path.join(test_root, i)) for i in test_ids}
  assert trained and not trained & tested
  assert set(trained_ids) <= set(splits["ids"]["train"])
  return splits


def test_folder_test_split_is_checked(tmp_path):
  data = DataConfig(source="folder", path=make_folder(tmp_path / "flat"))
  assert held_out.test_data(data, "test").split == "test"
  for bad in ("train", "nonexistent", "train[:10%]"):
    with pytest.raises(DataError, match="not on"):
      held_out.test_data(data, bad)
  with pytest.raises(DataError, match="no 'validation' split"):
    held_out.test_data(data, "validation")
  with pytest.raises(DataError, match="no 'test' split"):
    held_out.test_data(DataConfig(source="folder", path=data.path, test_fraction=0.0),
                       "test")


def test_other_sources_keep_their_split():
  assert held_out.test_data(DataConfig(source="cifar10"), "test").split == "test"
  assert held_out.record(DataConfig(source="cifar10"), "/nonexistent") is None
  assert held_out.summary(DataConfig(source="cifar10", split="test"), 7) == {
      "split": "test", "layout": "dataset", "num_examples": 7}


def test_record_writes_disjoint_ids_and_summary_names_the_layout(tmp_path):
  data = DataConfig(source="folder", path=make_folder(tmp_path / "flat"))
  doc = held_out.record(data, str(tmp_path / "out"))
  written = json.loads((tmp_path / "out" / held_out.SPLITS_FILE).read_text())
  assert written == doc and doc["layout"] == "carved"
  assert len(doc["ids"]["test"]) == 3 and len(doc["ids"]["train"]) == 27
  assert not set(doc["ids"]["test"]) & set(doc["ids"]["train"])
  test = held_out.test_data(data, "test")
  assert held_out.summary(test, 3) == {"split": "test", "layout": "carved",
                                       "num_examples": 3}
  nested = DataConfig(source="folder", path=make_folder(
      tmp_path / "nested", splits={"train": 4, "validation": 2, "test": 2}))
  assert held_out.has_validation(nested) and not held_out.has_validation(data)
  assert held_out.summary(held_out.test_data(nested, "test"), 6)["layout"] == (
      "split_folders")


def test_a_validation_folder_that_selects_models_is_not_the_test_split(tmp_path):
  nested = DataConfig(source="folder", path=make_folder(
      tmp_path / "nested", splits={"train": 4, "validation": 2, "test": 2}))
  assert held_out.test_data(nested, "validation").split == "validation"  # linear: fine
  with pytest.raises(DataError, match="selects the model"):
    held_out.test_data(nested, "validation", selects_on_validation=True)
  with pytest.raises(DataError, match="not 'nonexistent'"):
    held_out.test_data(DataConfig(source="folder", path=nested.path, split="nonexistent"),
                       "test")
