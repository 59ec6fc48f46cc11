"""RoI sampling targets, both box heads' shapes, Fast R-CNN loss against NumPy."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf.detection import boxes as box_ops
from cpc_tf.detection import roi_head
from cpc_tf.configs import DetectorConfig

CONFIG = DetectorConfig(roi_batch_per_image=8, roi_positive_fraction=0.25,
                        roi_add_ground_truth=False)


def test_sample_rois_targets():
  tf.random.set_seed(0)
  gt = np.array([[[0, 0, 10, 10], [20, 20, 40, 40]]], np.float32)
  classes = np.array([[3, 1]])
  valid = np.array([[True, True]])
  props = np.array([[[0, 0, 10, 9], [0, 0, 10, 8], [20, 20, 40, 38], [60, 60, 70, 70],
                     [0, 0, 10, 4], [80, 0, 90, 10], [0, 80, 5, 90], [50, 50, 51, 51],
                     [70, 70, 90, 90], [0, 0, 0, 0]]], np.float32)
  props_valid = np.array([[True] * 9 + [False]])
  out = roi_head.sample_rois(props, props_valid, gt, classes, valid, CONFIG)
  assert out["rois"].shape == (1, 8, 4)
  cls = out["classes"].numpy()[0]
  rois = out["rois"].numpy()[0]
  # 3 foreground candidates, at most 25% of 8 = 2 taken; 6 background fill the rest.
  assert (cls > 0).sum() == 2 and out["valid"].numpy().all()
  for roi, c, d in zip(rois, cls, out["deltas"].numpy()[0]):
    if c > 0:
      target = gt[0, 0] if roi[0] == 0 else gt[0, 1]
      assert c == (4 if roi[0] == 0 else 2)
      np.testing.assert_allclose(d, box_ops.encode(target, roi).numpy(), atol=1e-5)
    else:
      assert not np.all(roi == 0)  # the invalid proposal is never sampled
      np.testing.assert_array_equal(d, 0)


def test_sample_rois_adds_ground_truth_and_handles_empty_images():
  config = dataclasses.replace(CONFIG, roi_add_ground_truth=True)
  gt = np.zeros((2, 1, 4), np.float32)
  gt[0, 0] = [0, 0, 10, 10]
  valid = np.array([[True], [False]])
  props = np.array([[[50, 50, 60, 60]], [[50, 50, 60, 60]]], np.float32)
  out = roi_head.sample_rois(props, np.ones((2, 1), bool), gt, np.zeros((2, 1)), valid, config)
  assert out["rois"].shape == (2, 2, 4)
  assert out["classes"].numpy()[0].max() == 1  # the ground-truth box itself
  assert out["valid"].numpy()[1].tolist() == [True, False]  # 1 background, no box
  assert out["classes"].numpy()[1].max() == 0


@pytest.mark.parametrize("head", ["residual", "fc"])
def test_box_head_shapes(head):
  config = dataclasses.replace(CONFIG, head=head, head_width=16, head_bottleneck=4,
                               head_blocks=2, fc_width=8)
  logits, deltas = roi_head.BoxHead(config, 5)(tf.zeros([3, 14, 14, 6]))
  assert logits.shape == (3, 6) and deltas.shape == (3, 5, 4)


def test_losses_match_numpy():
  logits = np.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [1.0, 1.0, 1.0]], np.float32)
  deltas = np.arange(24, dtype=np.float32).reshape(3, 2, 4) / 10
  targets = {"valid": np.array([[True, True, False]]), "classes": np.array([[2, 0, 1]]),
             "deltas": np.array([[[0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], [9, 9, 9, 9]]], np.float32)}
  out = roi_head.losses(logits, deltas, targets, CONFIG)
  logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
  ce = -(logp[0, 2] + logp[1, 0]) / 2
  assert float(out["roi_class"]) == pytest.approx(ce, rel=1e-5)
  d = np.abs(deltas[0, 1] - targets["deltas"][0, 0])
  l1 = np.where(d < 1.0, 0.5 * d * d, d - 0.5).sum()
  assert float(out["roi_box"]) == pytest.approx(l1 / 2, rel=1e-5)


@pytest.mark.parametrize("head", ["fc", "residual"])
def test_a_checkpoint_holds_every_weight_of_the_head(head, tmp_path):
  config = DetectorConfig(head=head, fc_width=8, head_width=16, head_bottleneck=4,
                          head_blocks=2)
  heads = [roi_head.BoxHead(config, 3) for _ in range(2)]
  for h in heads:
    h(tf.zeros([1, 14, 14, 8]))
  path = tf.train.Checkpoint(head=heads[0]).write(str(tmp_path / "ckpt"))
  tf.train.Checkpoint(head=heads[1]).read(path).assert_consumed()
  saved = {name for name, _ in tf.train.list_variables(path)}
  assert sum("VARIABLE_VALUE" in n for n in saved) == len(heads[0].weights)
  for a, b in zip(heads[0].weights, heads[1].weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
