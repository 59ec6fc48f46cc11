"""FasterRCNN on a tiny stride-16 backbone: losses, gradients, detections, bad backbones."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import configs, resnet
from cpc_tf.configs import EncoderConfig
from cpc_tf.data import synthetic
from cpc_tf.detection import detector as det_lib

CONFIG = dataclasses.replace(
    configs.detector_synthetic_small(), rpn_channels=8, fc_width=16, roi_batch_per_image=16,
    rpn_post_nms_top_k_train=32, rpn_post_nms_top_k_test=16, max_detections=10)


def _tiny_backbone():
  """Strided convs to stride 16: the detector takes any keras.Model."""
  images = keras.Input((None, None, 3))
  x = images
  for _ in range(4):
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
  return keras.Model(images, x)


def _batch(num_images=2, size=64):
  ds = synthetic.synthetic_detection_dataset(num_images, num_images, split="train",
                                             image_size=size, min_side=12, max_side=30)
  return next(iter(ds))


@pytest.mark.parametrize("head", ["fc", "residual"])
def test_losses_finite_and_every_variable_gets_gradient(head):
  config = dataclasses.replace(CONFIG, head=head, head_width=16, head_bottleneck=4)
  model = det_lib.FasterRCNN(_tiny_backbone(), 3, config)
  batch = _batch()
  with tf.GradientTape() as tape:
    parts, total = det_lib.batch_losses(model, batch)
  assert set(parts) == {"rpn_objectness", "rpn_box", "roi_class", "roi_box"}
  assert np.isfinite(float(total))
  grads = tape.gradient(total, model.trainable_variables)
  missing = [v.path for v, g in zip(model.trainable_variables, grads) if g is None]
  assert not missing
  assert model.losses == []  # keras.Model's regularisation-loss property is not shadowed


def test_batch_without_boxes_trains_on_background():
  model = det_lib.FasterRCNN(_tiny_backbone(), 3, CONFIG)
  parts = model.loss_terms(tf.zeros([2, 64, 64, 3]), tf.zeros([2, 0, 4]),
                           tf.zeros([2, 0], tf.int64), tf.zeros([2, 0], tf.bool))
  assert all(np.isfinite(float(v)) for v in parts.values())
  assert float(parts["rpn_box"]) == 0.0 and float(parts["roi_box"]) == 0.0


def test_detect_padded_outputs_in_tf_function():
  model = det_lib.FasterRCNN(_tiny_backbone(), 3, CONFIG)
  batch = _batch()
  sizes = tf.constant([[64, 40], [64, 64]])
  out = tf.function(model.detect)(batch["image"], sizes)
  assert out["boxes"].shape == (2, 10, 4) and out["classes"].shape == (2, 10)
  boxes = out["boxes"].numpy()
  assert boxes.min() >= 0 and boxes[..., 2].max() <= 1
  assert boxes[0, :, 3].max() <= 40 / 64 + 1e-6  # clipped to the unpadded width
  valid = out["valid"].numpy()
  assert np.all(out["scores"].numpy()[valid] >= CONFIG.test_score_threshold)
  assert np.all((out["classes"].numpy() >= 0) & (out["classes"].numpy() < 3))


def test_cpc_encoder_backbone_by_name():
  encoder = resnet.build_encoder(EncoderConfig(name="detection_small"))
  model = det_lib.FasterRCNN(encoder, 3, CONFIG, feature=resnet.last_stack(encoder.output.keys()))
  parts, _ = det_lib.batch_losses(model, _batch(1))
  assert all(np.isfinite(float(v)) for v in parts.values())


def test_backbone_with_wrong_stride_is_refused():
  encoder = resnet.build_encoder(EncoderConfig(name="tiny"))  # stride 4
  with pytest.raises(ValueError, match="stride is not 16"):
    det_lib.FasterRCNN(encoder, 3, CONFIG, feature="stack3")
  with pytest.raises(ValueError, match="pass feature="):
    det_lib.FasterRCNN(encoder, 3, CONFIG)


def test_no_classes_is_refused():
  with pytest.raises(ValueError, match="at least one class"):
    det_lib.FasterRCNN(_tiny_backbone(), 0, CONFIG)
