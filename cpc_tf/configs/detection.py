"""Presets of the transfer to detection (ICLR 4.3): detectors and DetectionConfig.
"""

from __future__ import annotations

import dataclasses

from cpc_tf.configs.schema import DataConfig, DetectionConfig, DetectorConfig


def detector_paper() -> DetectorConfig:
  """Faster R-CNN C4 for VOC 2007 at 600 px (ICLR 4.3, Ren et al. 2015)."""
  return DetectorConfig()


def detector_synthetic_small() -> DetectorConfig:
  """A CPU-sized detector for the synthetic shapes set (128 px images)."""
  return DetectorConfig(
      anchor_scales=(16.0, 32.0, 64.0), rpn_channels=64, rpn_ignore_cross_boundary=False,
      rpn_pre_nms_top_k_train=600, rpn_post_nms_top_k_train=128,
      rpn_pre_nms_top_k_test=300, rpn_post_nms_top_k_test=64,
      roi_batch_per_image=32, head="fc", fc_width=256, head_width=256, head_bottleneck=64,
      head_blocks=1, test_nms_iou=0.4)


def detection_paper() -> DetectionConfig:
  """ICLR 4.3: ResNet-161 CPC encoder, 600 px VOC 2007 trainval -> test.

  Command: python -m launch.detection_transfer --preset=detection_paper
    --model_dir=... --data_dir=... --output_dir=... --strategy=tpu --tpu=NAME
  Paper (Table 3): 70.6 mAP (ResNet-101 encoder), 72.7 (ResNet-161).
  """
  return DetectionConfig()


def detection_synthetic() -> DetectionConfig:
  """CPU demo: the small detector on the synthetic shapes set (128 px images).

  Command: python -m launch.detection_transfer --preset=detection_synthetic
    --output_dir=runs/det
  Measured 2026-11-22 on the 2-core CPU machine (load average 4-6): test mAP@0.5
  0.882 on 300 images after 1000 steps, 6 min 46 s wall in all.
  """
  return DetectionConfig(
      data=DataConfig(source="synthetic", split="train", max_examples=4000),
      test_split="test", validation_split="test", validation_images=100,
      detector=detector_synthetic_small(), image_size=128, color_drop_p=0.0,
      scale_range=(1.0, 1.0), backbone="random", architecture="detection_small",
      batch_size=8, learning_rate=0.02, encoder_learning_rate=1e-3,
      frozen_steps=0, finetune_steps=1000, eval_every=250, eval_batch_size=8)


def detection_tiny() -> DetectionConfig:
  """Seconds-long run for tests: 64 px synthetic images, a few steps per phase."""
  small = detector_synthetic_small()
  return DetectionConfig(
      data=DataConfig(source="synthetic", split="train", max_examples=32),
      test_split="test", validation_split="test", validation_images=8, test_images=8,
      detector=dataclasses.replace(small, rpn_channels=16, fc_width=32, roi_batch_per_image=16,
                                   rpn_post_nms_top_k_train=32, rpn_post_nms_top_k_test=16),
      image_size=64, color_drop_p=0.0, scale_range=(1.0, 1.0), backbone="random",
      architecture="detection_small", batch_size=2, learning_rate=0.01,
      encoder_learning_rate=1e-4, frozen_steps=2, finetune_steps=2, eval_every=2,
      eval_batch_size=4)
