"""Detection presets and DetectorConfig: defaults of the paper, checks with clear messages."""

import dataclasses

import pytest

from cpc_tf.configs import detection
from cpc_tf.configs import DetectorConfig


def test_paper_defaults():
  c = detection.detector_paper()
  assert c.anchors_per_cell == 9 and c.roi_box_weights == (10.0, 10.0, 5.0, 5.0)
  assert (c.rpn_positive_iou, c.rpn_negative_iou, c.rpn_batch_per_image) == (0.7, 0.3, 256)
  assert (c.roi_batch_per_image, c.roi_positive_fraction, c.rpn_nms_iou) == (512, 0.25, 0.7)
  with pytest.raises(dataclasses.FrozenInstanceError):
    c.head = "fc"


@pytest.mark.parametrize("changes, message", [
    ({"head": "mlp"}, "Unknown detection head"),
    ({"roi_pool": "median"}, "Unknown roi_pool"),
    ({"roi_align_size": 7}, "must be even"),
    ({"anchor_scales": ()}, "non-empty"),
    ({"rpn_box_weights": (1.0, 1.0)}, "4 weights"),
    ({"roi_positive_fraction": 0.0}, r"\(0, 1\]"),
    ({"rpn_negative_iou": 0.8}, "must not exceed"),
])
def test_bad_values(changes, message):
  with pytest.raises(ValueError, match=message):
    DetectorConfig(**changes)
