"""SavedModel of the pre-trained encoder (Polyak-averaged weights, supp. A).

Glossary: B batch, H/W image size, Gh/Gw patch grid, D feature depth,
h/w the final feature grid of a whole image (H/16 with the CPC encoders).

Signatures (inputs float32 RGB in [0, 1], the range pre-training used):
  patched(images [B, S, S, 3], S = the config's image_size)
      -> {"latents": [B, Gh, Gw, D]}   cut into the pre-training patch grid,
                                       one mean-pooled vector per patch
  whole_image(images [B, H, W, 3], any H, W)
      -> {"stem", "stack1".."stackK", "pooled"}
                                       the encoder's named outputs on the whole
                                       image (supp. C), as `cpc_tf.resnet`
                                       returns them; "stackK" [B, h, w, D] is
                                       the last stack
Load with `tf.saved_model.load(export_dir).signatures["patched"]` (or call
`loaded.patched(images)` / `loaded.whole_image(images)`).
"""

from __future__ import annotations

import tensorflow as tf

import keras

from cpc_tf import patches as patches_lib
from cpc_tf.configs import GridConfig
from cpc_tf.model import encode_patches

SIGNATURES = ("patched", "whole_image")


class EncoderModule(tf.Module):
  """A pre-trained encoder behind two explicit-signature tf.functions.

  encoder: `cpc_tf.resnet` encoder (e.g. `cpc_tf.eval.encoders.load_encoder(
  model_dir).model`, the Polyak-averaged one); grid: its pre-training patch
  grid. Only the encoder is tracked, so the SavedModel holds no CPC-head weights.
  """

  def __init__(self, encoder: keras.Model, grid: GridConfig):
    super().__init__(name="cpc_encoder")
    self.encoder = encoder
    self.patch_size, self.stride = grid.patch_size, grid.stride
    size = grid.image_size
    self.image_size = tf.constant(size, tf.int32)
    self.patched = tf.function(
        self._patched,
        input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    self.whole_image = tf.function(
        self._whole_image,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])

  def _patched(self, images):
    """images [B, S, S, 3] in [0, 1] -> {"latents": [B, Gh, Gw, D]}."""
    patches = patches_lib.extract_patches(images, self.patch_size, self.stride)
    return {"latents": tf.cast(encode_patches(self.encoder, patches), tf.float32)}

  def _whole_image(self, images):
    """images [B, H, W, 3] in [0, 1] -> the encoder's named outputs, float32."""
    out = self.encoder(images, training=False)
    return {name: tf.cast(value, tf.float32) for name, value in out.items()}


def export_encoder(encoder: keras.Model, grid: GridConfig, export_dir: str) -> str:
  """Writes `encoder` as a SavedModel with the SIGNATURES; returns export_dir."""
  module = EncoderModule(encoder, grid)
  tf.saved_model.save(module, export_dir, signatures={
      "patched": module.patched, "whole_image": module.whole_image})
  return export_dir
