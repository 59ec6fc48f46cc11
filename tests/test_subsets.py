"""Label-fraction subsets and the validation split: sizes per class, determinism, files."""

import dataclasses

import numpy as np
import pytest

from cpc_tf.eval import subsets
from cpc_tf.configs import DataConfig, SubsetConfig


def _labels(per_class=(30, 20, 10)):
  return np.concatenate([np.full(n, c) for c, n in enumerate(per_class)])


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 1.0])
def test_balanced_subset_keeps_floor_or_ceil_of_each_class_share(fraction):
  labels = _labels()
  keep = subsets.balanced_subset(labels, fraction, seed=3)
  assert len(keep) == round(fraction * len(labels)) and len(set(keep)) == len(keep)
  for c, n in enumerate((30, 20, 10)):
    got = int(np.sum(labels[keep] == c))
    assert np.floor(fraction * n) <= got <= np.ceil(fraction * n), (c, got)


def test_subsets_are_identical_for_a_seed_and_differ_across_seeds():
  labels = _labels()
  a = subsets.balanced_subset(labels, 0.2, seed=0)
  np.testing.assert_array_equal(a, subsets.balanced_subset(labels, 0.2, seed=0))
  assert not np.array_equal(a, subsets.balanced_subset(labels, 0.2, seed=1))


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5])
def test_bad_label_fraction(fraction):
  with pytest.raises(ValueError, match=rf"label_fraction={fraction}: must lie in \(0, 1\]"):
    subsets.balanced_subset(_labels(), fraction, 0)
  with pytest.raises(ValueError, match=rf"label_fraction={fraction}: must lie in \(0, 1\]"):
    SubsetConfig(label_fraction=fraction)


def test_fashion_mnist_split_is_disjoint_balanced_and_reproducible(tmp_path):
  config = SubsetConfig(data=DataConfig(source="fashion_mnist", max_examples=400),
                        label_fraction=0.25, validation_size=0, validation_fraction=0.25,
                        test_split="test")
  s = subsets.make_subsets(config)
  assert len(s.validation_ids) == 100 and len(s.train_ids) == 75
  assert not set(s.train_ids) & set(s.validation_ids)
  index = subsets.read_index(config.data)
  label = dict(zip(index.ids, index.labels))
  val_counts = np.bincount([label[i] for i in s.validation_ids], minlength=10)
  per_class = np.bincount(index.labels, minlength=10)
  assert np.all(np.abs(val_counts - per_class / 4) <= 1)
  assert s.test.split == "test" and s.train.split == "train"

  # The file written into output_dir is reused on resume and by --subset_file.
  again = subsets.resolve(config, str(tmp_path))
  assert again == s
  assert subsets.resolve(dataclasses.replace(config, seed=9), str(tmp_path)) == s
  other = tmp_path / "other"
  assert subsets.resolve(config, str(other), str(tmp_path / "subset.json")) == s
  with pytest.raises(ValueError, match="holds a 0.25 label fraction.*--label_fraction=0.25"):
    subsets.resolve(dataclasses.replace(config, label_fraction=0.5), str(tmp_path))


def test_validation_split_errors():
  data = DataConfig(source="fashion_mnist", max_examples=50)
  with pytest.raises(ValueError, match="No validation split.*--validation_size"):
    subsets.make_subsets(SubsetConfig(data=data, validation_size=0))
  with pytest.raises(ValueError, match="leaves nothing to train on.*50"):
    subsets.make_subsets(SubsetConfig(data=data, validation_size=50))


def test_imagenet_standard_subset_and_validation_outside_it():
  """1% of imagenet2012 = imagenet2012_subset/1pct; validation never overlaps it."""
  full = subsets.Index(tuple(f"full-{i}" for i in range(40)), np.arange(40) % 4,
                       tuple(f"n{i}.JPEG" for i in range(40)))
  subset = subsets.Index(("sub-0", "sub-1", "sub-2", "sub-3"), np.arange(4),
                         ("n0.JPEG", "n1.JPEG", "n2.JPEG", "n3.JPEG"))

  calls = []

  def index_fn(data, file_names):
    calls.append((data.source, file_names))
    return subset if data.source == "imagenet2012_subset/1pct" else full

  config = SubsetConfig(data=DataConfig(source="imagenet2012"), label_fraction=0.01,
                        validation_size=12)
  s = subsets.make_subsets(config, index_fn)
  assert s.train.source == "imagenet2012_subset/1pct" and s.train_ids == subset.ids
  assert len(s.validation_ids) == 12 and s.validation.source == "imagenet2012"
  assert not {"full-0", "full-1", "full-2", "full-3"} & set(s.validation_ids)
  assert s.test == dataclasses.replace(config.data, split="validation")
  assert calls == [("imagenet2012", True), ("imagenet2012_subset/1pct", True)]
  # Other fractions of ImageNet are drawn like any other dataset.
  drawn = subsets.make_subsets(dataclasses.replace(config, label_fraction=0.5), index_fn)
  assert drawn.train.source == "imagenet2012" and len(drawn.train_ids) == 14


def test_read_index_of_mocked_imagenet_has_file_names():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=6):
    index = subsets.read_index(DataConfig(source="imagenet2012"), file_names=True)
    assert len(index.ids) == len(index.labels) == len(index.file_names) == 6
    assert index.ids[0].startswith("imagenet2012-train")
    assert subsets.read_index(DataConfig(source="imagenet2012")).file_names is None
