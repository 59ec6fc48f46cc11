"""Faster R-CNN (Ren et al. 2015) in Keras 3 + TF ops for the detection transfer (ICLR 4.3)."""
