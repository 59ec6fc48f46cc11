"""Synthetic shapes: determinism, boxes that match the drawn pixels, pipeline structure."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.data import synthetic
from cpc_tf.data.errors import DataError


def test_deterministic_and_splits_differ():
  a = synthetic.make_example(3, seed=1, image_size=64, min_side=10, max_side=30)
  b = synthetic.make_example(3, seed=1, image_size=64, min_side=10, max_side=30)
  c = synthetic.make_example(3, seed=1, split="test", image_size=64, min_side=10, max_side=30)
  np.testing.assert_array_equal(a["image"], b["image"])
  assert not np.array_equal(a["image"], c["image"])


def test_boxes_are_tight_and_disjoint():
  for index in range(20):
    ex = synthetic.make_example(index, image_size=64, min_side=10, max_side=30)
    boxes = ex["boxes"] * 64
    assert 1 <= len(boxes) <= 4 and ex["image"].shape == (64, 64, 3)
    assert ex["labels"].min() >= 0 and ex["labels"].max() < len(synthetic.CLASS_NAMES)
    assert np.all(boxes[:, 2:] - boxes[:, :2] >= 10)
    assert np.all((boxes >= 0) & (boxes <= 64))
    for i in range(len(boxes)):
      for j in range(i):
        a, b = boxes[i], boxes[j]
        assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_shape_reaches_every_side_of_its_box():
  ex = synthetic.make_example(0, image_size=64, max_objects=1, min_side=20, max_side=30)
  y0, x0, y1, x1 = (ex["boxes"][0] * 64).astype(int)
  # Rebuild with the object to find its pixels: they differ from the empty background.
  inner = ex["image"][y0:y1, x0:x1]
  colour = inner[(y1 - y0) - 1, (x1 - x0) // 2]  # bottom centre is inside every shape
  on = np.abs(inner - colour).sum(-1) < 0.15
  assert on[0].any() and on[-1].any() and on[:, 0].any() and on[:, -1].any()


def test_dataset_matches_detection_pipeline_structure():
  ds = synthetic.synthetic_detection_dataset(6, 3, split="test", training=False, image_size=32,
                                             min_side=8, max_side=14)
  batches = list(ds)
  assert len(batches) == 2
  batch = batches[0]
  assert set(batch) == {"image", "image_size", "boxes", "labels", "difficult", "num_boxes", "id"}
  assert batch["image"].shape == (3, 32, 32, 3) and batch["image"].dtype == tf.float32
  assert batch["labels"].dtype == tf.int64 and batch["difficult"].dtype == tf.bool
  m = batch["boxes"].shape[1]
  for b in range(3):
    n = int(batch["num_boxes"][b])
    assert np.all(batch["labels"][b, :n].numpy() >= 0)
    assert np.all(batch["labels"][b, n:].numpy() == -1)
    assert n <= m
  assert batch["id"][0].numpy() == b"test-0"


def test_training_stream_repeats():
  ds = synthetic.synthetic_detection_dataset(2, 2, image_size=32, min_side=8, max_side=14)
  assert len(list(ds.take(3))) == 3


def test_bad_arguments():
  with pytest.raises(DataError, match="split"):
    synthetic.make_example(0, split="val")
  with pytest.raises(DataError, match="min_side"):
    synthetic.synthetic_detection_dataset(4, 2, image_size=32, min_side=8, max_side=40)
  with pytest.raises(DataError, match="positive"):
    synthetic.synthetic_detection_dataset(0, 2)


def test_training_flips_vary_across_epochs():
  ex = synthetic.make_example(0, image_size=32, min_side=8, max_side=14)
  ds = synthetic.synthetic_detection_dataset(1, 1, image_size=32, min_side=8, max_side=14)
  flipped = []
  for batch in ds.take(12):
    image, boxes = batch["image"][0].numpy(), batch["boxes"][0].numpy()
    if np.array_equal(image, ex["image"]):
      np.testing.assert_allclose(boxes, ex["boxes"], atol=1e-6)
      flipped.append(False)
    else:
      np.testing.assert_array_equal(image, ex["image"][:, ::-1])
      mirrored = np.stack([ex["boxes"][:, 0], 1 - ex["boxes"][:, 3], ex["boxes"][:, 2],
                           1 - ex["boxes"][:, 1]], -1)
      np.testing.assert_allclose(boxes, mirrored, atol=1e-6)
      flipped.append(True)
  assert any(flipped) and not all(flipped)
