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
`loaded.patched(images)` / `loaded.whole_image(images)`). The signatures
declare their input: `patched` images TensorSpec [None, S, S, 3],
`whole_image` [None, None, None, 3], so a fresh process reads S from
`loaded.signatures["patched"].structured_input_signature[1]["images"].shape[1]`
without the config; `loaded.grid()` gives the whole pre-training grid
{"image_size", "patch_size", "stride", "resize_to"} as int32 scalars (older
exports lack it). Every signature checks its input when
called: float32 (the signature's dtype; TF refuses others by name), rank 4,
3 channels, and for `patched` S x S; anything else
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
GRID_FIELDS = ("image_size", "patch_size", "stride", "resize_to")  # `loaded.grid()`
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
    self._grid = {k: getattr(grid, k) for k in GRID_FIELDS}
    # The whole pre-training grid, for what the signatures cannot declare
    # (resize_to: images were resized to it, then cropped to S).
    self.grid = tf.function(self._grid_constants, input_signature=[])
    # The signatures declare their shapes, so a caller reads S from
    # `structured_input_signature` alone. A signature call does not check a
    # declared shape, so each body checks it at run time (`_checked`). The
    # attributes take any shape and run the same check first: a tf.function
    # with static dims would refuse a wrong size with TypeError's dump of the
    # whole array instead of the one-line message.
    self.patched_signature = tf.function(self._patched, input_signature=[
        tf.TensorSpec([None, size, size, 3], tf.float32, name="images")])
    self.whole_image_signature = tf.function(self._whole_image, input_signature=[
        tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    self.patched = tf.function(self._patched_any, input_signature=[
        tf.TensorSpec(None, tf.float32, name="images")])
    self.whole_image = tf.function(self._whole_image_any, input_signature=[
        tf.TensorSpec(None, tf.float32, name="images")])

  def _patched_input(self, images):
    return _checked(images, "patched", [self.size, self.size, 3],
                    f"float32 [B, {self.size}, {self.size}, 3] in [0, 1] (S = the "
                    "pre-training image_size; use whole_image for other sizes)")

  def _whole_image_input(self, images):
    return _checked(images, "whole_image", [None, None, 3], "float32 [B, H, W, 3] RGB in [0, 1]")

  def _grid_constants(self):
    return {k: tf.constant(v, tf.int32) for k, v in self._grid.items()}

  def _patched_any(self, images):
    return self.patched_signature(self._patched_input(images))

  def _whole_image_any(self, images):
    return self.whole_image_signature(self._whole_image_input(images))

  def _patched(self, images):
    """images [B, S, S, 3] in [0, 1] -> {"latents": [B, Gh, Gw, D]}."""
    images = self._patched_input(images)
    patches = patches_lib.extract_patches(images, self.patch_size, self.stride)
    return {"latents": tf.cast(encode_patches(self.encoder, patches), tf.float32)}

  def _whole_image(self, images):
    """images [B, H, W, 3] in [0, 1] -> the encoder's named outputs, float32."""
    images = self._whole_image_input(images)
    out = self.encoder(images, training=False)
    return {name: tf.cast(value, tf.float32) for name, value in out.items()}


def _checked(images: tf.Tensor, signature: str, dims: list, expected: str) -> tf.Tensor:
  """images of any shape -> the same tensor, shape [None, *dims] after a runtime check.

  `dims` are H, W, C with None for "any size"; raises InvalidArgumentError
  naming the signature, what it expects and the shape it got.
  """
  shape = tf.shape(images)
  wanted = tf.constant([-1 if d is None else d for d in dims], tf.int32)
  # The rank is read from the shape padded with -1 (never a size), not from
  # tf.size(shape): under a declared rank TF folds the size to that constant,
  # while a signature call may feed a tensor of another rank.
  padded = tf.concat([shape, tf.fill([len(dims) + 2], -1)], 0)
  given = padded[1:len(dims) + 1]
  ok = tf.logical_and(
      tf.reduce_all(tf.logical_or(tf.equal(given, wanted),
                                  tf.logical_and(tf.equal(wanted, -1), given >= 0))),
      tf.equal(padded[len(dims) + 1], -1))
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
      "patched": module.patched_signature, "whole_image": module.whole_image_signature})
  encoder.save(os.path.join(export_dir, KERAS_FILE))
  return export_dir
