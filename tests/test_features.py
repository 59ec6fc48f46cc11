"""Feature cache (cpc_tf/eval/features.py, launch/extract_features.py): round trip,
order, subsets, equivalence with training through the frozen encoder."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import checkpoints, configs
from cpc_tf.eval import classifiers
from cpc_tf import data as data_lib
from cpc_tf.eval import features
from cpc_tf.configs import ClassifierConfig, DataConfig, EncoderConfig
from cpc_tf.model import build_model
from cpc_tf.resnet import build_encoder
from tolerances import f32_atol, network_terms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

DATA = DataConfig(source="fashion_mnist", split="test", max_examples=20)
IMAGE_SIZE = 32


def _fake(n, shape=(2, 2, 3)):
  x = np.arange(n * np.prod(shape), dtype=np.float32).reshape((n, *shape)) / 7.0
  labels = np.arange(n, dtype=np.int64) % 3
  ids = np.array([f"ex{i}".encode() for i in range(n)])
  return x, labels, ids


def test_round_trip_keeps_values_labels_ids_and_order(tmp_path):
  x, labels, ids = _fake(11)
  ds = tf.data.Dataset.from_tensor_slices((x, labels, ids)).batch(4)
  info = features.write_features(lambda v: v * 2.0, ds, str(tmp_path), num_classes=3,
                                 num_shards=3, source={"note": "fake"})
  assert info.shape == (2, 2, 3) and info.num_examples == 11 and len(info.shards) == 3
  assert features.read_info(str(tmp_path)) == info
  got = list(features.feature_dataset(str(tmp_path), 5, with_ids=True).unbatch()
             .as_numpy_iterator())
  np.testing.assert_array_equal(np.stack([g[0] for g in got]), x * 2.0)
  np.testing.assert_array_equal([g[1] for g in got], labels)
  np.testing.assert_array_equal([g[2] for g in got], ids)


def test_keep_ids_and_training_batches(tmp_path):
  x, labels, ids = _fake(10)
  ds = tf.data.Dataset.from_tensor_slices((x, labels, ids)).batch(3)
  features.write_features(tf.identity, ds, str(tmp_path), num_classes=3, num_shards=2)
  kept = features.feature_dataset(str(tmp_path), 8, keep_ids=["ex1", "ex4", "ex9"],
                                  with_ids=True)
  assert [i for b in kept for i in b[2].numpy()] == [b"ex1", b"ex4", b"ex9"]
  train = features.feature_dataset(str(tmp_path), 4, training=True, seed=1)
  batches = list(train.take(6))  # repeats past the 10 examples
  assert all(f.shape == (4, 2, 2, 3) and l.shape == (4,) for f, l in batches)
  again = list(features.feature_dataset(str(tmp_path), 4, training=True, seed=1).take(6))
  for (a, _), (b, _) in zip(batches, again):
    np.testing.assert_array_equal(a, b)  # a seed gives one stream


def test_unfinished_or_missing_cache_is_refused(tmp_path):
  with pytest.raises(features.CacheError, match="not a finished feature cache"):
    features.feature_dataset(str(tmp_path), 4)
  with pytest.raises(features.CacheError, match="empty"):
    features.write_features(tf.identity, tf.data.Dataset.from_tensor_slices(_fake(2)).batch(
        1).take(0), str(tmp_path), num_classes=3)
  with pytest.raises(features.CacheError, match="twice"):
    x, labels, _ = _fake(2)
    same = np.array([b"a", b"a"])
    features.write_features(tf.identity, tf.data.Dataset.from_tensor_slices(
        (x, labels, same)).batch(2), str(tmp_path), num_classes=3)


@pytest.fixture(scope="module")
def classifier():
  tf.keras.utils.set_random_seed(0)
  encoder = build_encoder(EncoderConfig(name="tiny"))
  return classifiers.efficient_classifier(
      encoder, ClassifierConfig(blocks=1, width=16, bottleneck=8), num_classes=10,
      dropout=0.0, image_size=IMAGE_SIZE)


@pytest.fixture(scope="module")
def cache(classifier, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("cache"))
  return path, features.extract(classifier, DATA, path, image_size=IMAGE_SIZE,
                                batch_size=8, num_shards=2, source={"checkpoint_step": 0})


def test_cached_features_give_the_logits_and_losses_of_the_frozen_encoder(
    classifier, cache):
  path, info = cache
  assert info.num_examples == 20 and info.num_classes == 10
  assert info.source["checkpoint_step"] == 0 and info.source["mode"] == "efficient_eval"
  ids = data_lib.example_ids(DATA)
  keep = ids[3:15]
  images = data_lib.efficient_eval_dataset(DATA, 6, image_size=IMAGE_SIZE, keep_ids=keep)
  cached = features.feature_dataset(path, 6, keep_ids=keep)
  loss_fn = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  terms = network_terms(classifier)
  for (x, y), (f, y_cached) in zip(images, cached):
    np.testing.assert_array_equal(y, y_cached)
    direct = classifier(x, training=False)
    from_cache = classifier.head(f, training=False)
    # Features came from another graph and batch size: float32 rounding through the
    # encoder and head; cross-entropy moves by at most 2x its largest logit's error.
    atol = f32_atol(direct, *terms)
    np.testing.assert_allclose(from_cache, direct, rtol=0.0, atol=atol)
    np.testing.assert_allclose(loss_fn(y, from_cache), loss_fn(y, direct), rtol=0.0,
                               atol=2 * atol)


def test_extract_features_binary(tmp_path):
  """launch/extract_features.py on a model_dir holding a random tiny encoder."""
  model_dir = str(tmp_path / "pretrain")
  config = configs.tiny()
  checkpoints.write_config(config, model_dir)
  model = build_model(config.model)
  tf.train.Checkpoint(averaged_model=model).write(
      os.path.join(model_dir, "ckpt-3"))
  out = tmp_path / "cache"
  result = subprocess.run(
      [sys.executable, "-m", "launch.extract_features", f"--model_dir={model_dir}",
       "--dataset=fashion_mnist", "--split=test", "--max_examples=12", "--protocol=linear",
       "--checkpoint_step=3", "--num_shards=2", f"--output_dir={out}"],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Extracting 'pooled'" in result.stdout
  assert f"Wrote 12 examples of [4, 4, 32] float32 features in 2 shards to {out}" in (
      result.stdout)
  info = features.read_info(str(out))
  assert info.source["checkpoint_step"] == 3 and info.source["mode"] == "linear_eval"
  ids = [i for _, _, batch in features.feature_dataset(str(out), 5, with_ids=True)
         for i in batch.numpy()]
  assert ids == [i.encode() for i in data_lib.example_ids(
      DataConfig(source="fashion_mnist", split="test", max_examples=12))]


@pytest.mark.slow  # over 10 s here: kept out of the 15-minute default suite
def test_extract_features_binary_reads_a_folders_held_out_split(tmp_path):
  """Issue 9: --split=test of a folder is its carved share, --split=train the rest;
  the ids are recorded in splits.json beside the cache, and a grid flag resizes the
  linear protocol's grid."""
  from test_held_out import make_folder  # pylint: disable=import-outside-toplevel
  model_dir = str(tmp_path / "pretrain")
  config = configs.tiny()
  checkpoints.write_config(config, model_dir)
  tf.train.Checkpoint(averaged_model=build_model(config.model)).write(
      os.path.join(model_dir, "ckpt-3"))
  folder = make_folder(tmp_path / "images")  # 3 classes x 10: 3 test, 27 train
  cached = {}
  for split, extra in (("test", ["--grid_image_size=40"]), ("train", [])):
    out = tmp_path / split
    result = subprocess.run(
        [sys.executable, "-m", "launch.extract_features", f"--model_dir={model_dir}",
         f"--dataset=folder:{folder}", f"--split={split}", "--protocol=linear", *extra,
         "--checkpoint_step=3",
         f"--output_dir={out}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    cached[split] = {i for _, _, batch in features.feature_dataset(str(out), 8,
                                                                   with_ids=True)
                     for i in batch.numpy()}
    assert (out / "splits.json").exists()
  assert len(cached["test"]) == 3 and len(cached["train"]) == 27
  assert not cached["test"] & cached["train"]
  assert features.read_info(str(tmp_path / "test")).shape[:2] == (5, 5)  # 40 px grid
