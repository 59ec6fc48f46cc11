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
`loaded.patched(images)` / `loaded.whole_image(images)`). Every signature
checks its input when called: float32 (the signature's dtype; TF refuses
others by name), rank 4, 3 channels, and for `patched` S x S; anything else
raises InvalidArgumentError "assertion failed: [<signature>: images must be
...] [<the shape given>]" instead of computing on the wrong grid.

Beside the SavedModel, `export_dir/encoder.keras` is the same encoder as a
Keras-native model (images [B, H, W, 3] -> the encoder's named outputs), for
fine-tuning with any Keras optimizer, which a SavedModel behind `TFSMLayer`
cannot give in Keras 3. Load it in a process that has imported `cpc_tf.export` (which imports
`cpc_tf.resnet`, where the encoder's custom layers register themselves): `keras.saving.load_model(path)`.
"""

from __future__ import annotations

import os

import keras
import tensorflow as tf

from cpc_tf import patches as patches_lib
from cpc_tf.configs import GridConfig
from cpc_tf.model import encode_patches

SIGNATURES = ("patched", "whole_image")
KERAS_FILE = "encoder.keras"


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
    self.size = size
    self.image_size = tf.constant(size, tf.int32)
    # Unknown-rank specs: a signature call does not check a declared shape, and
    # with static dims in the spec the graph folds them into the check below.
    self.patched = tf.function(
        self._patched, input_signature=[tf.TensorSpec(None, tf.float32, name="images")])
    self.whole_image = tf.function(
        self._whole_image, input_signature=[tf.TensorSpec(None, tf.float32, name="images")])

  def _patched(self, images):
    """images [B, S, S, 3] in [0, 1] -> {"latents": [B, Gh, Gw, D]}."""
    images = _checked(images, "patched", [self.size, self.size, 3],
                      f"float32 [B, {self.size}, {self.size}, 3] in [0, 1] (S = the "
                      "pre-training image_size; use whole_image for other sizes)")
    patches = patches_lib.extract_patches(images, self.patch_size, self.stride)
    return {"latents": tf.cast(encode_patches(self.encoder, patches), tf.float32)}

  def _whole_image(self, images):
    """images [B, H, W, 3] in [0, 1] -> the encoder's named outputs, float32."""
    images = _checked(images, "whole_image", [None, None, 3],
                      "float32 [B, H, W, 3] RGB in [0, 1]")
    out = self.encoder(images, training=False)
    return {name: tf.cast(value, tf.float32) for name, value in out.items()}


def _checked(images: tf.Tensor, signature: str, dims: list, expected: str) -> tf.Tensor:
  """images of any shape -> the same tensor, shape [None, *dims] after a runtime check.

  `dims` are H, W, C with None for "any size"; raises InvalidArgumentError
  naming the signature, what it expects and the shape it got.
  """
  shape = tf.shape(images)
  wanted = tf.constant([-1 if d is None else d for d in dims], tf.int32)

  def dims_match():
    given = shape[1:]
    return tf.reduce_all(tf.logical_or(tf.equal(given, wanted), tf.equal(wanted, -1)))

  ok = tf.cond(tf.equal(tf.size(shape), 4), dims_match, lambda: tf.constant(False))
  check = tf.debugging.Assert(ok, [f"{signature}: images must be {expected}; got shape",
                                   shape], summarize=8)
  with tf.control_dependencies([check]):
    images = tf.identity(images)
  return tf.ensure_shape(images, [None, *dims])


def export_encoder(encoder: keras.Model, grid: GridConfig, export_dir: str) -> str:
  """Writes `encoder` as a SavedModel with the SIGNATURES and, beside it, as
  KERAS_FILE (module doc); returns export_dir."""
  module = EncoderModule(encoder, grid)
  tf.saved_model.save(module, export_dir, signatures={
      "patched": module.patched, "whole_image": module.whole_image})
  encoder.save(os.path.join(export_dir, KERAS_FILE))
  return export_dir
