"""Faster R-CNN hyper-parameters, written once (Ren et al. 2015; ICLR 4.3).

Pixel sizes refer to the network input (the pipeline's longer side S, 600 px
for VOC as in Ren et al.). Where Ren et al. and later reference code differ,
the field says which one is followed and why.
"""

from __future__ import annotations

from dataclasses import dataclass

HEADS = ("residual", "fc")
ROI_POOLS = ("max", "avg")


@dataclass(frozen=True)
class DetectorConfig:
  """Every number of the detector; shapes in docstrings use A anchors per cell."""

  # Backbone: the CPC encoder's last stack is at stride 16 (ICLR 4.3, "C4").
  feature_stride: int = 16
  # Anchors, Ren et al. 3.1.1: 3 scales x 3 aspect ratios (h / w) per position.
  anchor_scales: tuple[float, ...] = (128.0, 256.0, 512.0)
  anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
  # RPN, Ren et al. 3.1.1-3.1.3.
  rpn_channels: int = 512  # 3x3 conv width (Ren et al.: 512 for VGG-16)
  rpn_positive_iou: float = 0.7
  rpn_negative_iou: float = 0.3
  rpn_batch_per_image: int = 256
  rpn_positive_fraction: float = 0.5
  # Ren et al. 3.3: cross-boundary anchors are ignored in training.
  rpn_ignore_cross_boundary: bool = True
  rpn_box_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # Ren et al. eq. 2, unweighted
  rpn_smooth_l1_beta: float = 1.0 / 9.0  # py-faster-rcnn sigma = 3
  rpn_pre_nms_top_k_train: int = 12000  # Ren et al. 3.3
  rpn_post_nms_top_k_train: int = 2000
  rpn_pre_nms_top_k_test: int = 6000
  rpn_post_nms_top_k_test: int = 300  # Ren et al. 4.1: 300 proposals at test time
  rpn_nms_iou: float = 0.7  # Ren et al. 3.3
  rpn_min_size: float = 0.0  # px; proposals smaller than this on a side are dropped
  # RoI head, Fast R-CNN (Girshick 2015) 2.3: 128 RoIs/image as 2 x 64; Detectron and
  # the ResNet C4 design (He et al. 2016 A) use 512 per image, 25% foreground.
  roi_batch_per_image: int = 512
  roi_positive_fraction: float = 0.25
  roi_foreground_iou: float = 0.5
  # Girshick 2015 uses background IoU in [0.1, 0.5) as a hard-mining heuristic;
  # [0, 0.5) as Detectron, since the RPN already proposes near objects.
  roi_background_iou_low: float = 0.0
  # Ground-truth boxes join the proposals in training (Detectron), so the head sees
  # foreground even while the RPN is still poor.
  roi_add_ground_truth: bool = True
  roi_box_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)  # standard Fast R-CNN weights
  roi_smooth_l1_beta: float = 1.0
  roi_align_size: int = 14  # RoIAlign 14x14, then pooled to 7x7 (ICLR 4.3; He et al. 2017)
  roi_pool: str = "max"  # 14 -> 7 reduction of the "fc" head (TF OD API: 2x2 max pool)
  # Head: "residual" = a new stack at stride 32 on the 14x14 crops, as res5 in the
  # ResNet C4 detector (He et al. 2016 A); "fc" = two fully connected layers.
  head: str = "residual"
  head_blocks: int = 3
  head_width: int = 2048  # residual stream width (res5 of ResNet-101)
  head_bottleneck: int = 512
  fc_width: int = 1024
  # Inference (Ren et al. 4: NMS 0.3; Detectron 0.5; issue 11: 0.3-0.5).
  test_nms_iou: float = 0.3
  test_score_threshold: float = 0.05
  max_detections_per_class: int = 100
  max_detections: int = 100

  def __post_init__(self):
    if self.head not in HEADS:
      raise ValueError(f"Unknown detection head {self.head!r}; choose one of {HEADS}.")
    if self.roi_pool not in ROI_POOLS:
      raise ValueError(f"Unknown roi_pool {self.roi_pool!r}; choose one of {ROI_POOLS}.")
    if self.roi_align_size % 2:
      raise ValueError(f"roi_align_size={self.roi_align_size} must be even (pooled to half).")
    if not self.anchor_scales or not self.anchor_ratios:
      raise ValueError("anchor_scales and anchor_ratios must be non-empty.")
    if min(self.anchor_scales) <= 0 or min(self.anchor_ratios) <= 0:
      raise ValueError("anchor_scales and anchor_ratios must be positive.")
    for name in ("rpn_box_weights", "roi_box_weights"):
      if len(getattr(self, name)) != 4:
        raise ValueError(f"{name} needs 4 weights (y, x, h, w).")
    for name in ("rpn_positive_fraction", "roi_positive_fraction"):
      if not 0.0 < getattr(self, name) <= 1.0:
        raise ValueError(f"{name}={getattr(self, name)} must be in (0, 1].")
    if self.rpn_negative_iou > self.rpn_positive_iou:
      raise ValueError("rpn_negative_iou must not exceed rpn_positive_iou.")

  @property
  def anchors_per_cell(self) -> int:
    return len(self.anchor_scales) * len(self.anchor_ratios)


def paper() -> DetectorConfig:
  """Faster R-CNN C4 for VOC 2007 at 600 px (ICLR 4.3, Ren et al. 2015)."""
  return DetectorConfig()


def synthetic_small() -> DetectorConfig:
  """A CPU-sized detector for the synthetic shapes set (128 px images)."""
  return DetectorConfig(
      anchor_scales=(16.0, 32.0, 64.0), rpn_channels=64, rpn_ignore_cross_boundary=False,
      rpn_pre_nms_top_k_train=600, rpn_post_nms_top_k_train=128,
      rpn_pre_nms_top_k_test=300, rpn_post_nms_top_k_test=64,
      roi_batch_per_image=32, head="fc", fc_width=256, head_width=256, head_bottleneck=64,
      head_blocks=1, test_nms_iou=0.4)
