"""cpc_tf.data.pipelines: every protocol's batches, on real Fashion-MNIST files,
generated image folders, mocked TFDS datasets and a tiny real VOC-like builder."""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from cpc_tf.configs import AugmentConfig, DataConfig, GridConfig
from cpc_tf.data import (DataError, class_names, detection_dataset, efficient_eval_dataset,
                         efficient_train_dataset, example_ids, fashion_mnist,
                         linear_eval_dataset, linear_train_dataset, num_classes,
                         num_examples, pretrain_dataset)
from cpc_tf.patches import PRESET_GRIDS

OFF = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                    inception_color_p=0.0, grayscale_p=0.0)
V1_OPS = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                       inception_color_p=0.0, grayscale_p=0.0,
                       color_drop_p=1.0, flip_p=0.5, jitter_size=6)
SMALL = GridConfig(image_size=24, patch_size=8, stride=8, resize_to=28)  # 3x3
FMNIST = DataConfig(source="fashion_mnist", split="test", max_examples=32, shuffle_buffer=32)
needs_fmnist = pytest.mark.skipif(
    not os.path.exists(os.path.join(fashion_mnist.DEFAULT_DIR, "t10k-images-idx3-ubyte.gz")),
    reason="Debian package dataset-fashion-mnist not installed")


def _first(ds):
  return tf.nest.map_structure(lambda t: t.numpy(), next(iter(ds)))


def _check_images(x, shape):
  assert x.shape == shape and x.dtype == np.float32
  assert 0.0 <= x.min() and x.max() <= 1.0


# ----------------------------------------------------------------------------
# Pre-training

@needs_fmnist
def test_pretrain_is_deterministic_under_a_seed():
  a = _first(pretrain_dataset(FMNIST, SMALL, V1_OPS, 4, seed=3))
  b = _first(pretrain_dataset(FMNIST, SMALL, V1_OPS, 4, seed=3))
  c = _first(pretrain_dataset(FMNIST, SMALL, V1_OPS, 4, seed=4))
  _check_images(a, (4, 3, 3, 8, 8, 3))
  np.testing.assert_array_equal(a, b)
  assert not np.array_equal(a, c)


@needs_fmnist
@pytest.mark.parametrize("grid", ["cpc_v2", "cpc_v1"])
def test_pretrain_paper_grids(grid):
  g = PRESET_GRIDS[grid]
  x = _first(pretrain_dataset(FMNIST, g, OFF, 2, seed=0))
  _check_images(x, (2, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3))
  # Grey digits are tiled to three equal channels when no colour op runs.
  np.testing.assert_array_equal(x[..., 0], x[..., 2])


@needs_fmnist
def test_pretrain_shards_and_splits_the_batch_per_input_pipeline():
  data = DataConfig(source="fashion_mnist", split="test", max_examples=20)
  seen = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline,
                                         num_replicas_in_sync=2)
    ds = pretrain_dataset(data, SMALL, OFF, 4, seed=0, repeat=False, input_context=context)
    batches = [b.numpy() for b in ds]
    assert [b.shape[0] for b in batches] == [2] * 5  # 10 images per pipeline, batch 4 / 2
    seen.append(np.concatenate(batches))
  assert not np.array_equal(seen[0], seen[1])


@needs_fmnist
def test_pretrain_through_distribute_datasets_from_function():
  strategy = tf.distribute.get_strategy()
  ds = strategy.distribute_datasets_from_function(
      lambda context: pretrain_dataset(FMNIST, SMALL, OFF, 4, 0, input_context=context))
  assert next(iter(ds)).shape == (4, 3, 3, 8, 8, 3)


@needs_fmnist
def test_v1_pipeline_warns_when_supp_a_steps_are_on(caplog):
  data = DataConfig(source="fashion_mnist", split="test", max_examples=4, pipeline="v1")
  with caplog.at_level(logging.WARNING):
    pretrain_dataset(data, SMALL, AugmentConfig(
        randaugment=False, elastic_p=0.0, histogram_p=0.0, inception_color_p=0.0), 2, 0)
  assert "pipeline='v1'" in caplog.text and "grayscale_p" in caplog.text


def test_bad_arguments_raise():
  with pytest.raises(ValueError, match="pipeline='v3'"):
    DataConfig(source="fashion_mnist", pipeline="v3")
  with pytest.raises(DataError, match="batch_size=0"):
    pretrain_dataset(FMNIST, SMALL, OFF, 0, 0)


# ----------------------------------------------------------------------------
# Classification

@needs_fmnist
def test_classification_modes_shapes_and_eval_order():
  _, labels = fashion_mnist.load("test")
  g = PRESET_GRIDS["linear_iclr"]
  x, y = _first(linear_train_dataset(FMNIST, 2, grid=g, augment=V1_OPS))
  _check_images(x, (2, 6, 6, 80, 80, 3))
  assert y.dtype == np.int64
  x, y = _first(linear_eval_dataset(FMNIST, 2, grid=g))
  _check_images(x, (2, 6, 6, 80, 80, 3))
  np.testing.assert_array_equal(y, labels[:2])  # evaluation keeps the split's order
  # A jittered encoder's test patches: the same pixels in the centred 70 px window.
  form = AugmentConfig(jitter_size=70)
  framed, _ = _first(linear_eval_dataset(FMNIST, 2, grid=g, test_form=form))
  window = np.zeros((80, 80), bool)
  window[5:75, 5:75] = True
  np.testing.assert_array_equal(framed[..., window, :], x[..., window, :])
  assert (framed[..., ~window, :] == 0).all() and (x[..., ~window, :] > 0).any()
  x, y = _first(efficient_train_dataset(FMNIST, 2, augment=AugmentConfig(
      randaugment_num_ops=1, elastic_p=0.0), image_size=64))
  _check_images(x, (2, 64, 64, 3))
  x, y = _first(efficient_eval_dataset(FMNIST, 2))
  _check_images(x, (2, 224, 224, 3))
  np.testing.assert_array_equal(y, labels[:2])
  assert num_classes(FMNIST) == 10 and class_names(FMNIST)[9] == "Ankle boot"


@needs_fmnist
def test_eval_reads_every_example_once_and_training_is_deterministic():
  data = DataConfig(source="fashion_mnist", split="test", max_examples=10)
  sizes = [len(y) for _, y in efficient_eval_dataset(data, 4, image_size=8)]
  assert sizes == [4, 4, 2]
  make = lambda: _first(efficient_train_dataset(FMNIST, 4, seed=1, augment=OFF, image_size=16))
  a, b = make(), make()
  np.testing.assert_array_equal(a[0], b[0])
  np.testing.assert_array_equal(a[1], b[1])


@needs_fmnist
def test_subsets_by_id():
  _, labels = fashion_mnist.load("test")
  ds = efficient_eval_dataset(FMNIST, 8, keep_ids=[0, 5, 7], image_size=8)
  got = np.concatenate([y for _, y in ds])
  np.testing.assert_array_equal(got, labels[[0, 5, 7]])
  assert num_examples(FMNIST, keep_ids={"0", "5", "7", "99999"}) == 3
  with pytest.raises(DataError, match="keep_ids is empty"):
    efficient_eval_dataset(FMNIST, 8, keep_ids=[])
  assert example_ids(FMNIST)[:3] == ["0", "1", "2"]


# ----------------------------------------------------------------------------
# Image folders

def _save(path, image, fmt):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  image.save(path, fmt)


def _folder(root, corrupt=True):
  rng = np.random.default_rng(0)
  rgb = lambda: Image.fromarray((rng.random((20, 30, 3)) * 255).astype(np.uint8))
  _save(f"{root}/cat/a.jpg", rgb(), "JPEG")
  _save(f"{root}/cat/deep/b.png", rgb().convert("RGBA"), "PNG")
  _save(f"{root}/dog/c.bmp", rgb().convert("L"), "BMP")
  _save(f"{root}/dog/d.gif", rgb(), "GIF")
  _save(f"{root}/dog/e.png", Image.fromarray((rng.random((20, 30)) * 65535).astype(np.uint16)),
        "PNG")
  if corrupt:
    with open(f"{root}/dog/f.jpg", "w") as f:
      f.write("text, not a JPEG")
  # test_fraction=0: the whole folder is the "train" split (splits: test_data_splits.py).
  return DataConfig(source="folder", path=str(root), shuffle_buffer=8, test_fraction=0.0)


def test_folder_pretrain_skips_bad_files_with_a_count(tmp_path, caplog):
  data = _folder(tmp_path)
  with caplog.at_level(logging.WARNING):
    ds = pretrain_dataset(data, SMALL, V1_OPS, 5, seed=0, repeat=False)
  assert "Skipped 1 of 6 file(s)" in caplog.text and "dog/f.jpg" in caplog.text
  batches = [b.numpy() for b in ds]
  assert len(batches) == 1 and batches[0].shape == (5, 3, 3, 8, 8, 3)
  assert num_examples(data) == 5
  with pytest.raises(DataError, match="(?s)1 unusable.*dog/f.jpg.*on_bad_file='skip'"):
    pretrain_dataset(data, SMALL, OFF, 2, seed=0, on_bad_file="fail")


def test_folder_classification_labels_ids_and_names(tmp_path):
  data = _folder(tmp_path, corrupt=False)
  assert class_names(data) == ("cat", "dog")
  assert num_examples(data, labelled=True) == 5
  ds = efficient_eval_dataset(data, 8, image_size=16)
  x, y = _first(ds)
  _check_images(x, (5, 16, 16, 3))
  np.testing.assert_array_equal(y, [0, 0, 1, 1, 1])
  ds = efficient_eval_dataset(data, 8, image_size=16,
                              keep_ids=["cat/deep/b.png", "dog/e.png"])
  np.testing.assert_array_equal(_first(ds)[1], [0, 1])
  assert example_ids(data) == ["cat/a.jpg", "cat/deep/b.png", "dog/c.bmp", "dog/d.gif",
                               "dog/e.png"]


def test_empty_folder_raises(tmp_path):
  with pytest.raises(DataError, match="holds no images"):
    pretrain_dataset(DataConfig(source="folder", path=str(tmp_path)), SMALL, OFF, 2, 0)
  with pytest.raises(DataError, match="needs DataConfig.path"):
    pretrain_dataset(DataConfig(source="folder"), SMALL, OFF, 2, 0)


# ----------------------------------------------------------------------------
# TFDS datasets of the paper (mocked: random images, real loading code)

def test_mocked_stl10_unlabelled_pretrain_and_imagenet_subset_classification():
  with tfds.testing.mock_data(num_examples=6):
    x = _first(pretrain_dataset(DataConfig(source="stl10", split="unlabelled"), SMALL, OFF, 3, 0))
    _check_images(x, (3, 3, 3, 8, 8, 3))
    data = DataConfig(source="imagenet2012_subset/1pct", split="train")
    x, y = _first(efficient_eval_dataset(data, 3, image_size=32))
    _check_images(x, (3, 32, 32, 3))
    assert num_classes(data) == 1000 and num_examples(data) == 6
    x, y = _first(linear_eval_dataset(DataConfig(source="cifar10", split="test"), 2,
                                      grid=SMALL))
    _check_images(x, (2, 3, 3, 8, 8, 3))


# ----------------------------------------------------------------------------
# Detection: a real on-disk builder with the exact features of TFDS voc/2007

VOC_BOXES = [[[0.1, 0.2, 0.5, 0.6]], [[0.0, 0.0, 1.0, 0.5], [0.25, 0.5, 0.75, 1.0]],
             [[0.2, 0.1, 0.3, 0.9], [0.4, 0.4, 0.6, 0.6], [0.5, 0.0, 1.0, 1.0]]]


class CpcTinyVoc(tfds.core.GeneratorBasedBuilder):
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.builder("voc/2007").info.features)

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    rng = np.random.default_rng(0)
    for i, boxes in enumerate(VOC_BOXES):
      objects = [{"bbox": tfds.features.BBox(*b), "label": 3 * i + k, "pose": 0,
                  "is_truncated": False, "is_difficult": k == 1}
                 for k, b in enumerate(boxes)]
      labels = [o["label"] for o in objects]
      yield i, {"image": rng.integers(0, 255, (40, 20 + 20 * i, 3), dtype=np.uint8),
                "image/filename": f"{i}.jpg", "objects": objects, "labels": labels,
                "labels_no_difficult": labels}


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("voc"))
  tfds.builder("cpc_tiny_voc", data_dir=data_dir).download_and_prepare()
  return DataConfig(source="cpc_tiny_voc", data_dir=data_dir)


def test_detection_eval_pads_boxes_into_the_letterboxed_image(voc):
  b = _first(detection_dataset(voc, 3, training=False, image_size=40))
  _check_images(b["image"], (3, 40, 40, 3))
  np.testing.assert_array_equal(b["num_boxes"], [1, 2, 3])
  np.testing.assert_array_equal(b["image_size"], [[40, 20], [40, 40], [27, 40]])
  np.testing.assert_allclose(b["boxes"][0, 0], [0.1, 0.1, 0.5, 0.3], atol=1e-6)  # w 20 of 40
  np.testing.assert_allclose(b["boxes"][2], np.array(VOC_BOXES[2]) * [27 / 40, 1, 27 / 40, 1],
                             atol=1e-6)  # 40x60 -> 27x40
  np.testing.assert_array_equal(b["labels"][:2], [[0, -1, -1], [3, 4, -1]])
  np.testing.assert_array_equal(b["difficult"][1], [False, True, False])
  assert b["image"][0, :, 20:].max() == 0  # padding right of the 20 px wide image
  assert class_names(voc)[0] == "aeroplane"


def test_tfds_with_fewer_files_than_pipelines_shards_examples(voc):
  ids = []
  for pipeline in range(2):
    context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=pipeline)
    ids.append([i for b in detection_dataset(voc, 2, training=False, image_size=8,
                                             input_context=context) for i in b["id"].numpy()])
  assert len(ids[0]) == 2 and len(ids[1]) == 1 and not set(ids[0]) & set(ids[1])


def test_detection_training_moves_boxes_and_is_deterministic(voc):
  augment = AugmentConfig(color_drop_p=1.0)
  make = lambda: [tf.nest.map_structure(lambda t: t.numpy(), b) for b in detection_dataset(
      voc, 2, seed=0, augment=augment, image_size=32, scale_range=(0.9, 1.1)).take(4)]
  first, again = make(), make()
  for a, b in zip(first, again):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  for b in first:
    _check_images(b["image"], (2, 32, 32, 3))
    n = b["num_boxes"]
    assert b["boxes"].shape[1] == n.max() and (b["labels"] >= 0).sum() == n.sum()
    assert b["boxes"].min() >= 0 and b["boxes"].max() <= 1
  # Over 8 draws of 3 images, flips and zooms move the boxes to new places.
  centres = np.concatenate([(b["boxes"][..., 1] + b["boxes"][..., 3])[b["labels"] >= 0]
                            for b in first])
  assert len(np.unique(np.round(centres, 2))) > 3


def test_crop_min_area_one_keeps_the_whole_image():
  """efficient_train with crop_min_area=1: the Inception crop can only take the whole
  image (any crop of full area is the image), so the batch is the image resized."""
  from cpc_tf.data import fashion_mnist
  data = DataConfig(source="fashion_mnist", max_examples=8, shuffle_buffer=1)
  off = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                      inception_color_p=0.0, grayscale_p=0.0)
  images, _ = next(iter(efficient_train_dataset(
      data, 8, seed=1, augment=off, image_size=32, crop_min_area=1.0)))
  raw, _ = fashion_mnist.load("train")
  want = tf.clip_by_value(tf.image.resize(
      tf.image.grayscale_to_rgb(tf.constant(raw[:8], tf.float32) / 255.0), [32, 32]),
      0.0, 1.0).numpy()
  # The stream is shuffled: each output is one of the 8 images resized by the same
  # bilinear op on the same pixels (a float32 rounding apart at most).
  for image in images.numpy():
    assert min(np.abs(image - w).max() for w in want) < 1e-6
