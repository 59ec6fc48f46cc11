"""Heads and the encoder + head model: shapes, BN without scale, freezing, paper sizes."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import resnet
from cpc_tf.eval import classifiers
from cpc_tf.configs import ClassifierConfig, EncoderConfig, GridConfig
from tolerances import assert_close_f32, network_terms

GRID = GridConfig(image_size=32, patch_size=8, stride=8, resize_to=32)


def tiny_encoder():
  return resnet.build_encoder(EncoderConfig(name="tiny"), name="encoder")


def test_linear_head_shapes_and_batch_norm_without_scale():
  head = classifiers.LinearHead(7)
  logits = head(tf.random.normal([3, 4, 4, 16]), training=True)
  assert logits.shape == (3, 7)
  bn = head.norm
  assert isinstance(bn, keras.layers.BatchNormalization)
  assert bn.scale is False and bn.gamma is None and bn.center  # supp. B
  names = sorted(v.path.split("/")[-1] for v in head.trainable_variables)
  assert names == ["beta", "bias", "kernel"]
  assert head.conv.kernel.shape == (1, 1, 16, 7)


def test_linear_head_mean_pools_the_logits():
  head = classifiers.LinearHead(5)
  grid = tf.random.normal([2, 3, 3, 8])
  pooled = head(grid)
  per_cell = head.conv(head.norm(grid, training=False))
  # The head's own ops on the same input: equal but for float32 rounding of O(1) logits.
  np.testing.assert_allclose(pooled, tf.reduce_mean(per_cell, [1, 2]), atol=1e-6)


def test_linear_classifier_encodes_each_patch_alone():
  model = classifiers.linear_classifier(tiny_encoder(), GRID, 10)
  patches = tf.random.uniform([2, 4, 4, 8, 8, 3])
  assert model(patches).shape == (2, 10)
  features = model.features(patches)
  assert features.shape == (2, 4, 4, 32)
  alone = model.encoder(patches[:, 1, 2], training=False)["pooled"]
  # 2 patches against 32 in one batch: oneDNN may pick other kernels, float32 rounding.
  assert_close_f32(features[:, 1, 2], alone, *network_terms(model.encoder))
  with pytest.raises(ValueError, match=r"Expected patches \[B, 4, 4, 8, 8, 3\]"):
    model(tf.zeros([2, 32, 32, 3]))


def test_frozen_features_pass_no_gradient_and_fine_tuning_does():
  model = classifiers.efficient_classifier(
      tiny_encoder(), ClassifierConfig(blocks=2, width=16, bottleneck=8), 10, 0.5, 32)
  images = tf.random.uniform([2, 32, 32, 3])
  for train_encoder in (False, True):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(model(images, training=True, train_encoder=train_encoder))
    grads = tape.gradient(loss, model.encoder.trainable_variables)
    assert all(g is None for g in grads) != train_encoder
  assert model.feature == "stack3"
  assert model.features(images).shape == (2, 8, 8, 32)  # tiny: total stride 4


def test_resnet_head_structure():
  """supp. C.2: 11 blocks, projection in the first, 4096 / 1024 maps (scaled down here)."""
  assert (ClassifierConfig().blocks, ClassifierConfig().width,
          ClassifierConfig().bottleneck) == (11, 4096, 1024)
  head = classifiers.ResNetHead(ClassifierConfig(blocks=11, width=64, bottleneck=16),
                                1000, dropout=0.5)
  head(tf.zeros([1, 3, 3, 8]))
  convs = {l.name: l for l in head.trunk.layers if isinstance(l, keras.layers.Conv2D)}
  blocks = sorted({n.split("_")[0] for n in convs})
  assert len(blocks) == 11
  assert [n for n in convs if n.endswith("_proj")] == ["block1_proj"]
  for b in blocks:
    assert tuple(convs[f"{b}_conv{i}"].filters for i in (1, 2, 3)) == (16, 16, 64)
  # Zero padding and epsilon 1e-3 (the head's values), batch norm by default.
  norms = [l for l in head.trunk.layers if "Normalization" in type(l).__name__]
  assert norms and all(l.epsilon == 1e-3 for l in norms)
  pads = [l for l in head.trunk.layers if l.name.endswith("_pad")]
  assert pads and not any(l.symmetric for l in pads)
  assert head.dropout.rate == 0.5 and head.dense.units == 1000


def test_resnet_head_small_shapes():
  head = classifiers.ResNetHead(ClassifierConfig(blocks=3, width=12, bottleneck=4), 5, 0.0)
  assert head(tf.random.normal([2, 6, 6, 20]), training=True).shape == (2, 5)
  with pytest.raises(ValueError, match="blocks=0"):
    classifiers.ResNetHead(ClassifierConfig(blocks=0), 5, 0.0)


def test_supervised_classifier_has_dropout_before_the_last_layer():
  encoder = resnet.build_encoder(EncoderConfig(name="tiny", norm="batch"))
  model = classifiers.supervised_classifier(encoder, 10, 0.3, 32)
  assert model(tf.zeros([2, 32, 32, 3])).shape == (2, 10)
  assert isinstance(model.head, classifiers.DropoutLinear) and model.head.dropout.rate == 0.3
  with pytest.raises(ValueError, match=r"pooled features \[B, D\]"):
    model.head(tf.zeros([2, 4, 4, 8]))


def test_checkpoints_hold_every_weight(tmp_path):
  """tf.train.Checkpoint must reach every block (it does not follow Keras 3 lists)."""
  model = classifiers.efficient_classifier(
      tiny_encoder(), ClassifierConfig(blocks=3, width=8, bottleneck=4), 10, 0.5, 16)
  for name, obj in (("head", model.head), ("model", model)):
    path = tf.train.Checkpoint(**{name: obj}).write(str(tmp_path / name / "ckpt"))
    keys = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(keys) == len(obj.weights), name


@pytest.mark.parametrize("momentum", [0.99, 0.9])
def test_batch_norm_momentum_reaches_every_head_and_the_supervised_encoder(momentum):
  """One training call moves each moving mean to momentum * 0 + (1 - momentum) * batch mean."""
  grid = tf.random.uniform([4, 2, 2, 6]) + 1.0
  head = classifiers.LinearHead(3, bn_momentum=momentum)
  head(grid, training=True)
  batch_mean = tf.reduce_mean(grid, axis=[0, 1, 2]).numpy()
  np.testing.assert_allclose(head.norm.moving_mean.numpy(), (1 - momentum) * batch_mean,
                             rtol=1e-5)  # one mean of 16 values in float32
  res = classifiers.ResNetHead(ClassifierConfig(blocks=1, width=8, bottleneck=4,
                                                bn_momentum=momentum), 3, 0.0)
  res(grid, training=False)
  encoder = resnet.build_encoder(EncoderConfig(name="tiny", norm="batch"), bn_momentum=momentum)
  for model in (res.trunk, encoder):
    norms = [l for l in model.layers if isinstance(l, keras.layers.BatchNormalization)]
    assert norms and {l.momentum for l in norms} == {momentum}
