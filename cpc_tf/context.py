"""Masked PixelCNN context network, layer for layer as in ICLR A.2 / supp. A.

Glossary: B batch, H grid rows (the prediction direction), W grid columns,
D latent depth, F hidden width (256 in the paper).

Context row r depends on latent rows <= r only: the 1x3 conv mixes within a
row, the one-row top pad followed by the 2x1 VALID conv reaches one row up,
and 1x1 convs stay in place. Stacking blocks never reaches below row r.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cpc_tf.configs import ContextConfig
from cpc_tf.pointwise import PointwiseConv2D


class PixelCNN(keras.layers.Layer):
  """[B, H, W, D] -> [B, H, W, D]: residual masked-conv blocks, final ReLU."""

  def __init__(self, config: ContextConfig = ContextConfig(), **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.num_blocks = config.num_blocks

  def build(self, input_shape):
    depth = input_shape[-1]
    if depth is None:
      raise ValueError(f"PixelCNN needs a static latent depth D; got shape {input_shape}.")
    f = self.config.hidden_dim
    conv = keras.layers.Conv2D
    # Created in the pseudocode's order: per block 1x1, 1x3 SAME, 2x1 VALID, 1x1.
    # Held as named attributes, not in a list: tf.train.Checkpoint does not
    # track layers inside Keras 3's list wrappers.
    for k in range(self.config.num_blocks):
      block = (PointwiseConv2D(f, name=f"block{k}_in"),  # 1x1: Conv2D as a matmul
               conv(f, (1, 3), padding="same", name=f"block{k}_row"),
               conv(f, (2, 1), padding="valid", name=f"block{k}_up"),
               PointwiseConv2D(depth, name=f"block{k}_out"))
      shapes = (input_shape, input_shape[:-1] + (f,),
                (input_shape[0], None, input_shape[2], f), input_shape[:-1] + (f,))
      for layer, shape in zip(block, shapes):
        layer.build(shape)
        setattr(self, layer.name, layer)

  @property
  def blocks(self):
    """Per block, its (1x1, 1x3, 2x1, 1x1) convolutions."""
    return [tuple(getattr(self, f"block{k}_{part}") for part in ("in", "row", "up", "out"))
            for k in range(self.num_blocks)]

  def call(self, latents):
    cres = latents
    for conv_in, conv_row, conv_up, conv_out in self.blocks:
      c = tf.nn.relu(conv_in(cres))
      c = conv_row(c)
      c = tf.pad(c, [[0, 0], [1, 0], [0, 0], [0, 0]])  # one row on top: causal in H
      c = tf.nn.relu(conv_up(c))
      cres = cres + conv_out(c)
    return tf.nn.relu(cres)

  def compute_output_shape(self, input_shape):
    return input_shape
