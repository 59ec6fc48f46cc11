"""Faster R-CNN (Ren et al. 2015), ResNet "C4" design, in Keras 3 + TF ops (ICLR 4.3).

One concept per module:
  config       DetectorConfig (every number, cited) and its presets
  boxes        IoU, (10, 10, 5, 5)-weighted delta encode / decode, clipping
  anchors      scales x ratios anchors on a stride-16 grid
  nms          padded greedy NMS, class-agnostic and per class
  roi_align    RoIAlign 14x14 by bilinear sampling, 2x2 pooling to 7x7
  sampling     matching to ground truth, balanced minibatch sampling, smooth L1
  rpn          RPN head, anchor targets, losses, proposals
  roi_head     RoI sampling, box head (res5-like stack or 2 FC), losses
  detector     FasterRCNN keras.Model (loss_terms / detect) and batch_losses
  voc_eval     PASCAL VOC07 mAP (11-point or all-point)
"""
