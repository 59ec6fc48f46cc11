"""The CPC model: images -> patch grid -> encoder -> latent grid -> CPC head.

Glossary: B batch, H/W image size, Gh/Gw grid, P patch size, D latent depth.

Inputs are float32 in [0, 1], either images [B, H, W, 3] (cut into the
config's grid here) or patches [B, Gh, Gw, P, P, 3] (cut and augmented per
patch by the input pipeline). Patches are folded into the batch, encoded one
at a time (a mean-pooled vector each), and unfolded to the latent grid.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cpc_tf import patches as patches_lib
from cpc_tf import resnet
from cpc_tf.configs import ModelConfig
from cpc_tf.cpc import CPCHead


class CPCModel(keras.Model):
  """`model(x)` returns the loss dict; `cpc_tf.train` is the one loop that trains it."""

  def __init__(self, config: ModelConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.encoder = resnet.build_encoder(config.encoder, name="encoder")
    self.head = CPCHead(config.head, name="cpc_head")

  def to_patches(self, x: tf.Tensor) -> tf.Tensor:
    """Images [B, H, W, 3] or patches [B, Gh, Gw, P, P, 3] -> checked patches."""
    g = self.config.grid
    x = tf.convert_to_tensor(x)
    if x.shape.rank == 4:
      if tuple(x.shape[1:3]) != (g.image_size, g.image_size):
        raise ValueError(
            f"Expected images of {g.image_size}x{g.image_size} for this model's grid, "
            f"got shape {tuple(x.shape)}. Crop or resize them to {g.image_size} px.")
      return patches_lib.extract_patches(x, g.patch_size, g.stride)
    want = (g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3)
    if x.shape.rank != 6 or tuple(x.shape[1:]) != want:
      raise ValueError(f"Expected images [B, {g.image_size}, {g.image_size}, 3] or patches "
                       f"[B, {', '.join(map(str, want))}], got shape {tuple(x.shape)}.")
    return x

  def latents(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
    """Images or patches -> latent grid [B, Gh, Gw, D]."""
    return encode_patches(self.encoder, self.to_patches(x), training=training)

  def call(self, x, training: bool = False, cross_replica_negatives: bool = True):
    """Returns {"loss", "loss/<dir>", "accuracy/<dir>"}, scalars in float32."""
    z = self.latents(x, training=training)
    return self.head(z, cross_replica_negatives=cross_replica_negatives)


def encode_patches(encoder: keras.Model, patches: tf.Tensor, training: bool = False):
  """Patches [B, Gh, Gw, P, P, 3] -> latent grid [B, Gh, Gw, D].

  Each patch is encoded on its own (folded into the batch) to one mean-pooled
  vector, then put back on its grid.
  """
  pooled = encoder(patches_lib.fold(patches), training=training)["pooled"]
  return patches_lib.unfold(pooled, patches.shape[1], patches.shape[2])


def build_model(config: ModelConfig) -> CPCModel:
  """A CPCModel with all variables created (called once on a zero batch of 1)."""
  model = CPCModel(config)
  g = config.grid
  model(tf.zeros([1, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3]))
  return model
