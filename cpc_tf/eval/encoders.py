"""Pre-trained encoders for the evaluation protocols, with the checks they need.

Glossary: N images or patches, h/w their size, P patch size, Gh/Gw patch grid,
D feature depth.

An encoder comes from
  * a pre-training model_dir: its config.json names the architecture and the
    patch grid, and the checkpoint's Polyak-averaged weights (supp. A) are the
    ones evaluated. The model is the encoder of `cpc_tf.resnet` (images
    [N, h, w, 3] in [0, 1] -> dict of named outputs);
  * or a SavedModel written by `cpc_tf.export`: its `whole_image` signature
    becomes an encoder with the same named outputs. It has no config, so only the whole-image protocols (supp. C.2)
    can use it.
Both are trainable, so the same object serves the frozen and the fine-tuned phase.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from cpc_tf import checkpoints, resnet
from cpc_tf.configs import GridConfig, PretrainConfig


@dataclasses.dataclass
class Encoder:
  model: keras.Model | SavedModelEncoder
  pretrain: PretrainConfig | None  # the pre-training run's config (None: a SavedModel)
  source: str  # what results.json records as "encoder"

  @property
  def name(self) -> str:
    return self.pretrain.model.encoder.name if self.pretrain else "savedmodel"


class SavedModelEncoder(tf.Module):
  """The `whole_image` signature of an exported encoder, called like a resnet encoder.

  images [N, h, w, 3] in [0, 1] -> the encoder's named outputs (`stem`,
  `stack1..K`, `pooled`; see `cpc_tf.resnet`). `trainable_variables` are
  the export's weights, so fine-tuning updates them; a tf.train.Checkpoint of
  this module saves and restores them.
  """

  def __init__(self, path: str):
    super().__init__(name="encoder")
    self.loaded = tf.saved_model.load(path)
    if not hasattr(self.loaded, "whole_image"):
      raise ValueError(f"The SavedModel in {path} has no `whole_image` function: export "
                       "it with launch/export.py (cpc_tf.export).")
    function = self.loaded.whole_image.concrete_functions[0]
    self.weights = list(function.variables)  # tracked by tf.Module
    # Output names, as keras.Model.output.
    self.output = dict.fromkeys(function.structured_outputs)

  def __call__(self, images, training=False):
    del training  # the export runs the encoder in inference mode (layer norm: no state)
    return self.loaded.whole_image(tf.cast(images, tf.float32))

  @property
  def trainable_variables(self):
    return [v for v in self.weights if v.trainable]


def load(source: str, step: int | None = None, expect: str = "") -> Encoder:
  """A pre-training model_dir or an exported SavedModel directory -> Encoder."""
  if tf.io.gfile.isdir(source) and tf.saved_model.contains_saved_model(source):
    if step is not None:
      raise ValueError(f"{source} is an exported SavedModel: it holds one set of weights, "
                       f"so checkpoint step {step} cannot be chosen. Drop the step, or pass "
                       "the pre-training --model_dir.")
    if expect:
      raise ValueError(f"{source} is an exported SavedModel, which does not record its "
                       f"architecture, so --encoder={expect} cannot be checked. Pass "
                       "--encoder= (empty), or the pre-training --model_dir.")
    return Encoder(SavedModelEncoder(source), None, source)
  return load_encoder(source, step, expect)


def load_encoder(model_dir: str, step: int | None = None, expect: str = "") -> Encoder:
  """The averaged encoder of a pre-training model_dir (latest checkpoint, or `step`).

  `expect` ("" = anything) is the architecture the evaluation was configured
  for; a different one raises before any weight is read. Call inside the
  strategy's scope for distributed variables.
  """
  if not tf.io.gfile.isdir(model_dir):
    raise FileNotFoundError(
        f"--model_dir={model_dir} does not exist. Pass the directory a pre-training run "
        "(launch/pretrain.py --model_dir=...) wrote its config.json and checkpoints to.")
  config = checkpoints.read_config(model_dir)
  if config is None:
    raise FileNotFoundError(
        f"{checkpoints.config_path(model_dir)} not found: {model_dir} is not a "
        "pre-training model_dir. Pass the --model_dir of a launch/pretrain.py run.")
  check_encoder(config, expect)
  encoder = resnet.build_encoder(config.model.encoder, name="encoder")
  # Only the encoder of the checkpoint's Polyak-averaged model (supp. A): the
  # CPC head is never built. The nesting mirrors CPCModel's attribute names.
  status = tf.train.Checkpoint(averaged_model=tf.train.Checkpoint(encoder=encoder)).read(
      checkpoints.checkpoint_path(model_dir, step))
  status.expect_partial().assert_existing_objects_matched()
  source = model_dir if step is None else f"{model_dir}@{step}"
  return Encoder(encoder, config, source)


def check_encoder(config: PretrainConfig, expect: str) -> None:
  """Refuses a pre-training run whose encoder is not the one the evaluation expects."""
  name = config.model.encoder.name
  if expect and expect != name:
    raise ValueError(
        f"The pre-training run holds a {name!r} encoder but this evaluation expects "
        f"{expect!r}. Pass --encoder={name} (or --encoder= to accept any), or a "
        f"--model_dir pre-trained with {expect!r}.")


def check_grid(config: PretrainConfig, grid: GridConfig) -> None:
  """Linear evaluation cuts patches the encoder was trained on (supp. B): same P."""
  trained = config.model.grid.patch_size
  if grid.patch_size != trained:
    raise ValueError(
        f"The encoder was pre-trained on {trained}px patches but the evaluation grid cuts "
        f"{grid.patch_size}px patches. Use --grid=pretrain, or a grid of "
        f"{trained}px patches.")
  grid.grid_size  # raises when the patches do not tile the image
