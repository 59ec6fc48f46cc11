"""Pre-trained encoders for the evaluation protocols, with the checks they need.

Glossary: N images or patches, h/w their size, P patch size, Gh/Gw patch grid,
D feature depth.

An encoder comes from
  * a pre-training model_dir: its config.json names the architecture and the
    patch grid, and the checkpoint's Polyak-averaged weights (supp. A) are the
    ones evaluated. The model is the encoder of `cpc_tf.resnet` (images
    [N, h, w, 3] in [0, 1] -> dict of named outputs);
  * or a SavedModel written by `cpc_tf.export`: its `whole_image` signature
    becomes an encoder with the same named outputs. It has no config, so only
    the whole-image protocols (supp. C.2) can use it;
  * or the output_dir of a finished supervised baseline
    (`cpc_tf.eval.supervised`, supp. C.1; config.json protocol "supervised"):
    the same `cpc_tf.resnet` encoder (SupervisedConfig.architecture / .norm)
    with the weights the baseline tested, those of its best sweep point. No
    patch grid either: whole-image protocols only (ICLR 4.3's supervised
    transfer baseline).
All three are trainable, so the same object serves the frozen and the fine-tuned phase.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from cpc_tf import checkpoints, configs, resnet
from cpc_tf.configs import GridConfig, PretrainConfig, SupervisedConfig
from cpc_tf.eval import supervised as supervised_lib


@dataclasses.dataclass
class Encoder:
  model: keras.Model | SavedModelEncoder
  pretrain: PretrainConfig | None  # the pre-training run's config (None: not CPC's model_dir)
  source: str  # what results.json records as "encoder"
  supervised: SupervisedConfig | None = None  # a supervised baseline's config

  @property
  def name(self) -> str:
    if self.pretrain:
      return self.pretrain.model.encoder.name
    return self.supervised.architecture if self.supervised else "savedmodel"

  @property
  def method(self) -> str:
    """Results-row name of what it transfers: "CPC v2 <name>" or "Supervised <architecture>"."""
    return f"Supervised {self.name}" if self.supervised else f"CPC v2 {self.name}"


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
  """A pre-training model_dir, an exported SavedModel or a supervised baseline -> Encoder."""
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
  record = _run_record(source)
  protocol = record.get("protocol") if isinstance(record, dict) else None
  if protocol == supervised_lib.PROTOCOL:
    return load_supervised(source, record, step, expect)
  if protocol is not None:
    raise ValueError(
        f"{source} is the output_dir of a {protocol!r} evaluation, which trains no encoder "
        "to transfer. Pass a pre-training --model_dir, an exported SavedModel or the "
        "output_dir of launch/supervised_baseline.py.")
  return load_encoder(source, step, expect)


def _run_record(source: str) -> dict | None:
  """source's config.json record, or None (no directory, no record, or a damaged one:
  `load_encoder` then names the problem and the pre-training way out)."""
  if not tf.io.gfile.isdir(source):
    return None
  try:
    return checkpoints.read_record(source)
  except ValueError:
    return None


def load_supervised(output_dir: str, record: dict, step: int | None = None,
                    expect: str = "") -> Encoder:
  """The encoder a finished supervised baseline tested (`record`: its config.json).

  Rebuilds the baseline's ResNet-v2 (`supervised.encoder_config`) and restores
  the encoder entry of its best sweep point's best weights
  (`supervised.best_weights`); the classifier head is never built. `expect`
  as in `load_encoder`. Call inside the strategy's scope for distributed
  variables.
  """
  if step is not None:
    raise ValueError(f"{output_dir} is a supervised baseline: it holds the weights of its "
                     f"best sweep point, so checkpoint step {step} cannot be chosen. Drop "
                     "the step (--checkpoint_step).")
  try:
    config = configs.from_dict(SupervisedConfig, record["config"])
  except (KeyError, TypeError, ValueError) as e:
    raise ValueError(f"{checkpoints.config_path(output_dir)} is not the record of a "
                     f"supervised baseline ({e}); pass the --output_dir of a "
                     "launch/supervised_baseline.py run.") from None
  name = config.architecture
  if expect and expect != name:
    raise ValueError(
        f"The supervised baseline in {output_dir} trained a {name!r} encoder but this "
        f"evaluation expects {expect!r}. Pass --encoder={name} (or --encoder= to accept "
        f"any), or a baseline trained with --architecture={expect}.")
  path = supervised_lib.best_weights(output_dir, config)
  encoder = resnet.build_encoder(supervised_lib.encoder_config(config), name="encoder")
  # The nesting mirrors the baseline's checkpoint: its Classifier is `model`,
  # the encoder its `encoder` attribute.
  try:
    status = tf.train.Checkpoint(model=tf.train.Checkpoint(encoder=encoder)).read(path)
    status.expect_partial().assert_existing_objects_matched()
    # Every encoder variable restored is not enough: a saved encoder with more
    # (batch norm's moving statistics where layer norm has none) must not load.
    saved = [k for k in tf.train.load_checkpoint(path).get_variable_to_shape_map()
             if k.startswith("model/encoder/")]
    if len(saved) != len(encoder.weights):
      raise ValueError(f"{len(saved)} saved encoder variables, {len(encoder.weights)} built")
  except (AssertionError, ValueError, tf.errors.OpError) as e:
    reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise ValueError(
        f"{path} does not hold the weights of the {name} encoder (norm {config.norm}) that "
        f"{checkpoints.config_path(output_dir)} describes ({reason}); the directory mixes "
        "two runs: train the baseline again in a fresh --output_dir.") from None
  return Encoder(encoder, None, f"supervised:{output_dir}", supervised=config)


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
