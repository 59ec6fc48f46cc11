"""The split a classification protocol reports on, checked and recorded.

Glossary: N_test images in the test split.

For a TFDS dataset the test split is whatever `test_split` names (ImageNet's
public "validation"). For an image folder (`cpc_tf.data.splits`) it is one of
the folder's own splits, never its training split: "test" is the folder's
test/ sub-folder, the folder named by DataConfig.test_path, or the seeded,
class-stratified share carved out of train; "validation" is its validation/
(or val/) folder when it has one. Folder runs write every split's ids to
<output_dir>/splits.json (beside subset.json), and results.json's "test"
entry says which layout was used and on how many images.
"""

from __future__ import annotations

import dataclasses
import json
import os

from cpc_tf.configs import DataConfig
from cpc_tf.data import FOLDER_SPLITS, DataError, folder_splits
from cpc_tf.data import splits as folder_split_lib
from cpc_tf.eval import results

SPLITS_FILE = "splits.json"
# results.json "test".layout of a dataset that brings its own test split (TFDS).
DATASET_LAYOUT = "dataset"
FOLDER_TEST_SPLIT = "test"


def test_data(train: DataConfig, test_split: str, *, selects_on_validation: bool = False
              ) -> DataConfig:
  """The DataConfig of the test split; a folder's is checked to exist and to hold
  no training image (DataError naming the fix otherwise).

  `selects_on_validation`: the protocol selects models on a folder's validation/
  folder when it has one (supp. C), which then cannot be the test split too.
  """
  test = dataclasses.replace(train, split=test_split)
  if train.source != "folder":
    return test
  folder_split_lib.resolve(train, labelled=True)  # a bad --split, before any output
  if test_split not in FOLDER_SPLITS or test_split == train.split:
    others = [s for s in FOLDER_SPLITS if s != train.split]
    raise DataError(
        f"test_split={test_split!r}: an image folder is tested on one of its own "
        f"held-out splits ({', '.join(others)}), not on {test_split!r}; use "
        f"--test_split={FOLDER_TEST_SPLIT} (its test/ folder, --test_path, or the "
        "carved share).")
  folder_split_lib.resolve(test, labelled=True)  # raises if the folder has no such split
  if selects_on_validation and test_split == "validation" and has_validation(train):
    raise DataError(
        f"Image folder {train.path!r}: its validation/ folder selects the model, so it "
        f"cannot also be the test split; use --test_split={FOLDER_TEST_SPLIT}.")
  return test


def has_validation(data: DataConfig) -> bool:
  """True when `data` is an image folder with its own validation folder."""
  return data.source == "folder" and folder_splits(data).ids["validation"] is not None


def record(train: DataConfig, output_dir: str, write: bool = True) -> dict | None:
  """Writes <output_dir>/splits.json for a folder (every split's ids); -> its dict.

  None for other sources (their splits are the dataset's own).
  """
  if train.source != "folder":
    return None
  doc = folder_splits(train).to_json()
  if write:
    results.write_text(os.path.join(output_dir, SPLITS_FILE),
                       json.dumps(doc, indent=1, sort_keys=True))
  return doc


def summary(test: DataConfig, num_examples: int) -> dict:
  """results.json's "test" entry: the split, how it was found, N_test."""
  layout = DATASET_LAYOUT
  if test.source == "folder":
    layout = folder_split_lib.resolve(test, labelled=True).layout
  return {"split": test.split, "layout": layout, "num_examples": int(num_examples)}
