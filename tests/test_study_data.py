"""cpc_tf.drivers.study_data: the claim study pointed at one dataset, and its checks.

`make_folder` is shared with tests/test_study_binary.py (the end-to-end run).
"""

import os

import numpy as np
import pytest
from PIL import Image

from cpc_tf import configs
from cpc_tf.data import DataError
from cpc_tf.drivers import study, study_data
from cpc_tf.eval import subsets


def make_folder(root, layout, classes=("ant", "bee", "cat"), size=32, seed=0):
  """PNGs of a class-dependent colour: layout {split folder or None: images per class}
  -> root/<split>/<class>/ (root/<class>/ for None). Returns root as a str."""
  rng = np.random.default_rng(seed)
  for split, count in layout.items():
    for c, name in enumerate(classes):
      folder = os.path.join(str(root), *([split] if split else []), name)
      os.makedirs(folder, exist_ok=True)
      for i in range(count):
        pixels = rng.integers(0, 60, (size, size, 3)) + np.array([60 * c, 0, 0])
        Image.fromarray(pixels.astype(np.uint8)).save(os.path.join(folder, f"{i:02d}.png"))
  return str(root)


def stage_data(config):
  return {stage: study_data._get(config, path) for stage, path in
          study_data.DATA_PATHS.items()}


@pytest.mark.parametrize("preset", sorted(configs.STUDY_PRESETS))
def test_every_stage_reads_the_folder_with_one_test_split(preset):
  base = configs.study_preset(preset)
  config = study_data.for_dataset(base, "folder:/data/mine")
  for stage, data in stage_data(config).items():
    before = study_data._get(base, study_data.DATA_PATHS[stage])
    assert (data.source, data.path, data.split, data.max_examples) == (
        "folder", "/data/mine", "train", 0), stage
    assert (data.test_fraction, data.split_seed, data.test_path) == (0.1, 0, None)
    assert (data.pipeline, data.shuffle_buffer) == (before.pipeline, before.shuffle_buffer)
  assert {study_data._get(config, p) for p in study_data.TEST_SPLIT_PATHS.values()} == {"test"}
  assert config.pretrain.probe.every_steps == 0  # its 375 images came from Fashion-MNIST
  for protocol in ("efficient", "supervised"):
    subset = getattr(config, protocol).subset
    # A count sized for Fashion-MNIST becomes a share; a share stays the preset's.
    expected = getattr(base, protocol).subset.validation_fraction or 0.1
    assert subset.validation_fraction == expected
  # Nothing else changes: model, budgets, fractions, linear validation.
  assert config.pretrain.model == base.pretrain.model
  assert config.label_fractions == base.label_fractions and config.seeds == base.seeds
  assert config.linear.validation_size == base.linear.validation_size


@pytest.mark.parametrize("preset", sorted(configs.STUDY_PRESETS))
def test_the_presets_own_dataset_changes_nothing(preset):
  config = configs.study_preset(preset)
  assert study_data.current_dataset(config) == "fashion_mnist"
  assert study_data.for_dataset(config, "fashion_mnist") == config


def test_a_tfds_name_with_its_data_dir_and_test_split():
  base = configs.study_tiny()
  config = study_data.for_dataset(base, "imagenet2012_subset/1pct", data_dir="/tfds",
                                  test_split="validation")
  for stage, data in stage_data(config).items():
    assert (data.source, data.path, data.data_dir) == (
        "imagenet2012_subset/1pct", None, "/tfds")
    # Not a folder: the preset's first-N budget stays.
    assert data.max_examples == study_data._get(base, study_data.DATA_PATHS[stage]).max_examples
  assert config.linear.test_split == config.efficient.subset.test_split == "validation"
  summary = study_data.check(config)
  assert summary.images_per_class is None and "resized to 32 px" in summary.describe()


@pytest.mark.parametrize("value, expected", [
    ("folder:/a/b", {"source": "folder", "path": "/a/b"}),
    ("/a/b", {"source": "folder", "path": "/a/b"}),
    ("./b", {"source": "folder", "path": "./b"}),
    ("cifar10", {"source": "cifar10", "path": None}),
    ("imagenet2012_subset/10pct", {"source": "imagenet2012_subset/10pct", "path": None}),
])
def test_parse_dataset(value, expected):
  assert study_data.parse_dataset(value) == expected


@pytest.mark.parametrize("value", ["folder:", ""])
def test_an_empty_dataset_is_refused(value):
  with pytest.raises(ValueError, match="--dataset"):
    study_data.parse_dataset(value)


@pytest.mark.parametrize("preset, size, crop, resize", [
    ("study_tiny", 40, 40, 40),  # 8 px patches, stride 8: 40 tiles (4 rows)
    ("study_tiny", 44, 40, 44),  # 44 does not: the largest crop within it
    ("study_fashion_mnist", 28, 28, 28),  # stride 4: 28 tiles
    ("study_fashion_mnist", 64, 64, 64),
])
def test_image_size_derives_the_grid_and_sets_both_classifiers(preset, size, crop, resize):
  base = configs.study_preset(preset)
  config = study_data.for_dataset(base, "folder:/x", size)
  grid = config.pretrain.model.grid
  assert (grid.image_size, grid.resize_to) == (crop, resize)
  assert (grid.patch_size, grid.stride) == (base.pretrain.model.grid.patch_size,
                                            base.pretrain.model.grid.stride)
  assert grid.grid_size >= config.pretrain.model.head.min_grid_rows
  assert config.efficient.image_size == config.supervised.image_size == size


def test_the_paper_margin_between_resize_and_crop_is_kept():
  head = configs.HeadConfig()
  grid = study_data.grid_for(configs.GridConfig(), head, 300)  # supp. A: 300 -> 260
  assert (grid.image_size, grid.resize_to) == (296, 340)
  assert (grid.image_size - grid.patch_size) % grid.stride == 0


@pytest.mark.parametrize("preset, size, need", [("study_tiny", 23, 24),
                                                ("study_fashion_mnist", 19, 20)])
def test_an_image_size_too_small_for_the_grid_is_refused(preset, size, need):
  with pytest.raises(ValueError, match=rf"too small for the preset's patch grid.*"
                     rf"--image_size>={need}\."):
    study_data.for_dataset(configs.study_preset(preset), "folder:/x", size)
  study_data.for_dataset(configs.study_preset(preset), "folder:/x", need)


def test_a_test_split_that_is_a_training_split_is_refused():
  with pytest.raises(ValueError, match="test images would be training images"):
    study_data.for_dataset(configs.study_tiny(), "cifar10", test_split="train")
  config = study_data.for_dataset(configs.study_tiny(), "cifar10")
  mixed = configs.replace(config, **{"pretrain.data.split": "train+test[:50%]"})
  with pytest.raises(ValueError, match="pretrain.data.split='train\\+test"):
    study_data.check(mixed)


def test_stages_that_read_different_test_splits_are_refused():
  config = study_data.for_dataset(configs.study_tiny(), "folder:/x")
  bad = configs.replace(config, **{"linear.data.test_fraction": 0.2})
  with pytest.raises(ValueError, match="linear.data.test_fraction=0.2 but pretrain"):
    study_data.check(bad)


def folder_config(root, preset="study_tiny", **changes):
  config = study_data.for_dataset(configs.study_preset(preset), f"folder:{root}")
  return configs.replace(config, **changes)


def test_check_summarises_a_split_folder_and_a_carved_one(tmp_path):
  split = make_folder(tmp_path / "split", {"train": 16, "test": 4})
  summary = study_data.check(folder_config(split))
  assert summary.layout == "split_folders" and summary.test_images == 12
  assert summary.images_per_class == {"ant": 16, "bee": 16, "cat": 16}
  assert "3 classes, 48 training images" in summary.describe()
  flat = make_folder(tmp_path / "flat", {None: 20}, size=40)
  summary = study_data.check(folder_config(flat))
  # 10% of each class is held out as the test split and not counted as training.
  assert summary.layout == "carved" and summary.test_images == 6
  assert summary.images_per_class == {"ant": 18, "bee": 18, "cat": 18}
  assert summary.median_side == 40 and summary.image_size == 32


def loose_pngs(folder, count=3):
  os.makedirs(folder, exist_ok=True)
  for i in range(count):
    Image.new("RGB", (32, 32), (i, 0, 0)).save(os.path.join(folder, f"{i}.png"))


def test_a_folder_without_class_sub_folders_is_refused(tmp_path):
  loose_pngs(tmp_path / "loose")
  with pytest.raises(DataError, match="no class sub-folders.*PATH/<class>/"):
    study_data.check(folder_config(tmp_path / "loose"))
  # Split folders whose train/ holds images but no class folders.
  loose_pngs(tmp_path / "split" / "train")
  make_folder(tmp_path / "split" / "test", {None: 2})
  with pytest.raises(DataError, match=r"'.*split/train' has no class sub-folders"):
    study_data.check(folder_config(tmp_path / "split"))
  with pytest.raises(DataError, match="does not exist"):
    study_data.check(folder_config(tmp_path / "missing"))


def test_an_empty_class_folder_is_refused(tmp_path):
  root = make_folder(tmp_path, {None: 20})
  os.makedirs(os.path.join(root, "dog"))
  with open(os.path.join(root, "dog", "broken.png"), "w") as f:
    f.write("not an image")
  with pytest.raises(DataError, match="class 'dog' has no usable training image"):
    study_data.check(folder_config(root))


def test_images_too_small_for_the_patch_grid_are_refused(tmp_path):
  root = make_folder(tmp_path, {"train": 16, "test": 4}, size=12)
  with pytest.raises(DataError, match=r"too small for the patch grid \(median shorter side "
                     r"12 px.*need 24 px\).*patch_size=4 .*stride=4\)"):
    study_data.check(folder_config(root))
  # The suggested patches fit.
  study_data.check(folder_config(root, **{"pretrain.model.grid.patch_size": 4,
                                          "pretrain.model.grid.stride": 4}))


def test_a_folder_without_a_test_split_or_with_an_overlapping_one_is_refused(tmp_path):
  root = make_folder(tmp_path / "flat", {None: 20})
  no_test = {f"{p}.test_fraction": 0.0 for p in study_data.DATA_PATHS.values()}
  with pytest.raises(DataError, match="no 'test' split"):
    study_data.check(folder_config(root, **no_test))
  inside = {f"{p}.test_path": os.path.join(root, "ant")
            for p in study_data.DATA_PATHS.values()}
  with pytest.raises(DataError, match="overlap, so test images would be trained on"):
    study_data.check(folder_config(root, **inside))


def test_too_few_images_per_class_names_the_class_and_a_fraction_that_works(tmp_path):
  root = make_folder(tmp_path, {"train": 16, "test": 4}, classes=("ant", "bee", "cat"))
  make_folder(tmp_path, {"train": 4}, classes=("dog",))  # the smallest class
  tiny = {"linear.validation_size": 8, "label_fractions": (0.05, 1.0), "seeds": (0, 1)}
  with pytest.raises(DataError, match=r"at label fraction 0.05 \(subset seed 0\) 2 of 42 "
                     r".*\(smallest class: 'dog', 4 images, 3 after the validation carve\); "
                     r"use --label_fractions=0.34,1") as error:
    study_data.check(folder_config(root, **tiny))
  need = float(error.value.args[0].split("--label_fractions=")[1].split(",")[0])
  assert 0.05 < need < 1
  study_data.check(folder_config(root, **dict(tiny, label_fractions=(need, 1.0))))


def test_a_validation_carve_that_empties_a_class_is_refused(tmp_path):
  root = make_folder(tmp_path, {"train": 16, "test": 2}, classes=("ant", "bee"))
  make_folder(tmp_path, {"train": 1}, classes=("cat",))
  with pytest.raises(DataError, match="linear evaluation's validation carve.*leaves it none"):
    study_data.check(folder_config(root))  # study_tiny's linear carve: 40 of 33
  with pytest.raises(DataError, match="efficient validation carve.*leaves it none"):
    study_data.check(folder_config(root, **{"linear.validation_size": 3,
                                            "efficient.subset.validation_fraction": 0.9}))
  with pytest.raises(DataError, match="leaves nothing to train on"):
    study_data.check(folder_config(root, **{"linear.validation_size": 3,
                                            "efficient.subset.validation_fraction": 0.0,
                                            "efficient.subset.validation_size": 40}))


def test_the_fashion_mnist_preset_on_a_small_folder_names_the_linear_carve(tmp_path):
  root = make_folder(tmp_path, {"train": 16, "test": 4})
  with pytest.raises(DataError, match=r"\(500 of 48\).*linear.validation_size=4\)"):
    study_data.check(folder_config(root, "study_fashion_mnist"))


@pytest.mark.parametrize("sizes", [(1, 10, 10), (2, 3, 50), (5, 5, 5, 5), (3, 40), (1, 1, 9)])
def test_the_suggested_fraction_labels_every_class_at_every_seed(sizes):
  labels = np.repeat(np.arange(len(sizes)), sizes)
  fraction = study_data.labelled_fraction(len(labels), min(sizes))
  for seed in range(20):
    drawn = labels[subsets.balanced_subset(labels, fraction, seed)]
    assert set(drawn.tolist()) == set(range(len(sizes))), (fraction, seed)


def test_every_cell_is_checked_with_the_protocols_own_draw(tmp_path, monkeypatch):
  root = make_folder(tmp_path, {"train": 10, "test": 2})
  config = folder_config(root, **{"linear.validation_size": 3})
  drawn = []
  make = subsets.make_subsets
  monkeypatch.setattr(subsets, "make_subsets", lambda c, index: drawn.append(
      (c.label_fraction, c.seed)) or make(c, index))
  study_data.check(config)
  assert drawn == 2 * study.cells(config)  # efficient, then supervised
