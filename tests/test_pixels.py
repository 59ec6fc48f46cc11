"""cpc_tf.eval.pixels: kNN and logistic regression by hand, pixels read, one cell resumed."""

import json
import os

import numpy as np
import pytest

from cpc_tf import configs, probe
from cpc_tf.configs import DataConfig, PixelConfig
from cpc_tf.eval import pixels, results


def at(*degrees, norm=1.0):
  """2-D vectors at `degrees` from the x axis; cosine ignores their lengths."""
  r = np.deg2rad(np.asarray(degrees, np.float64))
  return (norm * np.stack([np.cos(r), np.sin(r)], axis=1)).astype(np.float32)


# Class 0 at 0, 5, 10 degrees, class 1 at 90, 95, 100, and one class-1 point
# mislabelled into class 0's cluster at 20 degrees. Lengths differ on purpose.
TRAIN_X = np.concatenate([at(0, 5, 10, norm=3.0), at(90, 95, 100, norm=0.5), at(20)])
TRAIN_Y = np.array([0, 0, 0, 1, 1, 1, 1])


def test_knn_chooses_k_on_validation_and_tests_with_it():
  # Validation: 19 deg (class 0) has the mislabelled 20 as its nearest, so k=1
  # misses it; k=3 (20, 10, 5) and k=5 get all three; k=7 votes 4-3 for class 1
  # everywhere. k=3 wins the tie with k=5 as the smaller; k=50 > 7 images is skipped.
  val_x, val_y = at(19, 92, 2), np.array([0, 1, 0])
  # Test with k=3: 8 -> (5, 10, 0) class 0; 97 -> class 1; 14 -> (10, 20, 5) 2-1 for
  # class 0; 93 is labelled 0 but sits in class 1's cluster: 3 of 4 right.
  test_x, test_y = at(8, 97, 14, 93), np.array([0, 1, 0, 0])
  got = pixels.knn(TRAIN_X, TRAIN_Y, val_x, val_y, test_x, test_y, (7, 5, 3, 1, 50), 2)
  assert got["per_k"] == pytest.approx({1: 2 / 3, 3: 1.0, 5: 1.0, 7: 1 / 3})
  assert got["k"] == 3 and got["val_top1"] == 1.0
  assert got["top1"] == 0.75 and got["top5"] == 1.0  # two classes: every top-5 hits


def test_knn_tie_goes_to_the_class_of_the_nearest():
  # k=2 from 17 deg: 20 (class 1, 3 deg off) and 10 (class 0, 7 off), one vote
  # each: class 1, the nearer (a plain argmax of the counts says 0). From 13: 0.
  x, y = at(17, 13), np.array([1, 0])
  got = pixels.knn(TRAIN_X, TRAIN_Y, x, y, x, y, (2,), 2)
  assert got["val_top1"] == 1.0 and got["top1"] == 1.0


def test_knn_top5_ranks_classes_by_votes_then_by_the_nearest():
  # Seven classes, one image each at 0, 10, ..., 60 deg. From 61 deg k=6 gives one
  # vote each to classes 6, 5, 4, 3, 2, 1 in that order of nearness: top-1 is 6 and
  # the top five are 6..2, so label 2 is a top-5 hit and label 1 is not.
  memory, labels = at(*range(0, 70, 10)), np.arange(7)
  x, y = at(61, 61), np.array([2, 1])
  got = pixels.knn(memory, labels, x, y, x, y, (6,), 7)
  assert got["top1"] == 0.0 and got["top5"] == 0.5


def test_knn_votes_as_the_probe_does_across_query_batches(monkeypatch):
  monkeypatch.setattr(pixels, "QUERY_BATCH", 7)  # several batches, a ragged last one
  rng = np.random.default_rng(0)
  memory = rng.normal(size=(60, 5)).astype(np.float32)
  labels = rng.integers(0, 4, 60)
  query, query_labels = rng.normal(size=(30, 5)).astype(np.float32), rng.integers(0, 4, 30)
  got = pixels.knn(memory, labels, query, query_labels, query, query_labels, (1, 4, 9), 4)
  for k, top1 in got["per_k"].items():
    predicted = probe.knn_predict(query, memory, labels, k, 4).numpy()
    assert top1 == pytest.approx(np.mean(predicted == query_labels)), k


def test_knn_without_a_usable_k_is_one_clear_error():
  with pytest.raises(ValueError, match="No k of .* fits 7 training images"):
    pixels.knn(TRAIN_X, TRAIN_Y, TRAIN_X, TRAIN_Y, TRAIN_X, TRAIN_Y, (8, 9), 2)


def _clusters(n, seed, classes=3, dim=20):
  """Gaussian clusters far apart: linearly separable."""
  rng = np.random.default_rng(seed)
  centres = np.random.default_rng(99).normal(size=(classes, dim)) * 5
  y = rng.integers(0, classes, n)
  return (centres[y] + rng.normal(size=(n, dim))).astype(np.float32), y


def test_logistic_regression_separates_separable_clusters():
  config = PixelConfig(learning_rate=0.05, batch_size=32, max_epochs=20, patience=3,
                       weight_decays=(0.0, 1e-3))
  got = pixels.logistic_regression(*_clusters(300, 0), *_clusters(60, 1), *_clusters(90, 2),
                                   config, 3, log=lambda _: None)
  assert got["val_top1"] == 1.0 and got["top1"] == 1.0 and got["top5"] == 1.0
  assert got["weight_decay"] == 0.0  # a tie between the decays goes to the first
  assert set(got["per_decay"]) == {0.0, 1e-3}
  assert got["epochs"] == got["best_epoch"] + config.patience  # stopped by patience


def test_logistic_regression_tests_the_best_validated_weights_not_the_last():
  # Random labels and a large step: validation Top-1 jumps around chance from
  # epoch to epoch. The test images are the validation images, so the tested
  # weights score the best epoch's Top-1 only if those weights were restored.
  rng = np.random.default_rng(0)
  x, y = rng.normal(size=(200, 10)).astype(np.float32), rng.integers(0, 4, 200)
  val_x, val_y = rng.normal(size=(100, 10)).astype(np.float32), rng.integers(0, 4, 100)
  config = PixelConfig(learning_rate=1.0, batch_size=16, max_epochs=8, patience=8,
                       weight_decays=(0.0,))
  got = pixels.logistic_regression(x, y, val_x, val_y, val_x, val_y, config, 4,
                                   log=lambda _: None)
  history = got["per_decay"][0.0]["history"]
  assert len(history) == 8 and history[-1] < max(history)  # the last epoch is worse
  assert got["best_epoch"] == int(np.argmax(history)) + 1
  assert got["val_top1"] == max(history) == got["top1"]


def test_standardise_uses_training_statistics_and_floors_the_std():
  train = np.array([[0.0, 0.5], [1.0, 0.5]], np.float32)  # feature 1 is constant
  train_s, other_s = pixels.standardise(train, np.array([[0.5, 0.6]], np.float32))
  np.testing.assert_allclose(train_s, [[-1.0, 0.0], [1.0, 0.0]])
  np.testing.assert_allclose(other_s, [[0.0, 0.1 / pixels.STD_FLOOR]], rtol=1e-5)


FASHION = DataConfig(source="fashion_mnist", max_examples=200)


def test_load_pixels_reads_whole_images_in_source_order():
  x, y = pixels.load_pixels(FASHION, None, 28)
  assert x.shape == (200, 28 * 28 * 3) and x.dtype == np.float32 and y.dtype == np.int64
  assert 0.0 <= x.min() and x.max() <= 1.0 and x.max() > 0.5
  grey = x.reshape(200, 28, 28, 3)
  np.testing.assert_array_equal(grey[..., 0], grey[..., 2])  # grey tiled to RGB
  kept, kept_y = pixels.load_pixels(FASHION, ["150", "3", "42"], 28)
  np.testing.assert_array_equal(kept, x[[3, 42, 150]])  # storage order, not the ids'
  np.testing.assert_array_equal(kept_y, y[[3, 42, 150]])
  small, _ = pixels.load_pixels(FASHION, ["3"], 14)  # the whole image, resized
  assert small.shape == (1, 14 * 14 * 3)
  np.testing.assert_allclose(small.reshape(14, 14, 3).mean(), grey[3].mean(), atol=0.02)


def test_load_pixels_names_missing_ids():
  with pytest.raises(ValueError, match="1 of the 2 ids are not in 'fashion_mnist'"):
    pixels.load_pixels(FASHION, ["3", "999"], 28)


def _cell():
  config = PixelConfig(ks=(1, 3), batch_size=32, max_epochs=3, patience=1,
                       weight_decays=(0.0, 1e-2))
  return config, configs.supervised_tiny().subset


def test_run_cell_writes_four_rows_and_reads_them_back(tmp_path, monkeypatch):
  config, subset = _cell()
  out = str(tmp_path)
  doc = pixels.run_cell(config, subset, out, log=lambda _: None)
  assert doc == results.read_results(out) and doc["protocol"] == "pixels"
  rows = {(r["method"], r["split"]): r for r in doc["rows"]}
  assert sorted(rows) == sorted((m, s) for m in (pixels.LOGISTIC_METHOD, pixels.KNN_METHOD)
                                for s in ("validation", "test"))
  subset_doc = json.load(open(os.path.join(out, "subset.json")))
  assert {r["num_train_examples"] for r in doc["rows"]} == {len(subset_doc["train_ids"])}
  # The test split is capped by the subset's max_examples too.
  assert doc["test"] == {"split": "test", "layout": "dataset", "num_examples": 200}
  choices = json.load(open(os.path.join(out, pixels.PIXELS_FILE)))
  assert rows[(pixels.KNN_METHOD, "test")]["top1"] == choices["knn"]["top1"]
  assert choices["knn"]["k"] in (1, 3) and set(choices["knn"]["per_k"]) == {"1", "3"}
  assert set(choices["logistic_regression"]["per_decay"]) == {"0.0", "0.01"}

  def no_work(*args, **kwargs):
    raise AssertionError("a finished cell was run again")

  monkeypatch.setattr(pixels, "logistic_regression", no_work)
  monkeypatch.setattr(pixels, "knn", no_work)
  monkeypatch.setattr(pixels, "load_pixels", no_work)
  assert pixels.run_cell(config, subset, out, log=lambda _: None) == doc


def test_run_cell_refuses_a_directory_of_another_config(tmp_path):
  config, subset = _cell()
  pixels.run_cell(config, subset, str(tmp_path), log=lambda _: None)
  with pytest.raises(ValueError, match="another pixel-baseline run"):
    pixels.run_cell(config, configs.replace(subset, label_fraction=0.5), str(tmp_path),
                    log=lambda _: None)
