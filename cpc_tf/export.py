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

from cpc_tf import checkpoints
from cpc_tf import patches as patches_lib
from cpc_tf.configs import PretrainConfig
from cpc_tf.model import CPCModel, encode_patches

SIGNATURES = ("patched", "whole_image")


class EncoderModule(tf.Module):
  """The encoder of a CPCModel behind two explicit-signature tf.functions.

  Only the encoder is tracked, so the SavedModel holds no CPC-head weights.
  """

  def __init__(self, model: CPCModel):
    super().__init__(name="cpc_encoder")
    self.encoder = model.encoder
    grid = model.config.grid
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


def export_encoder(model: CPCModel, export_dir: str) -> str:
  """Writes `model`'s encoder as a SavedModel with the SIGNATURES; returns export_dir."""
  module = EncoderModule(model)
  tf.saved_model.save(module, export_dir, signatures={
      "patched": module.patched, "whole_image": module.whole_image})
  return export_dir


def export_from_model_dir(model_dir: str, export_dir: str,
                          step: int | None = None) -> PretrainConfig:
  """Exports the averaged encoder of a pre-training run; returns the run's config."""
  config, model = checkpoints.load_averaged_model(model_dir, step)
  export_encoder(model, export_dir)
  return config
