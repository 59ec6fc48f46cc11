"""Pre-trained encoders for the evaluation protocols, with the checks they need.

Glossary: P patch size, Gh/Gw patch grid, D feature depth.

An encoder comes from a pre-training model_dir: its config.json names the
architecture and the patch grid, and the checkpoint's Polyak-averaged weights
(supp. A) are the ones evaluated. The returned keras.Model is the encoder of
`cpc_tf.resnet` (images [N, h, w, 3] in [0, 1] -> dict of named outputs); it
is trainable, so the same object serves the frozen and the fine-tuned phase.
"""

from __future__ import annotations

import dataclasses

import keras
import tensorflow as tf

from cpc_tf import checkpoints
from cpc_tf.configs import GridConfig, PretrainConfig


@dataclasses.dataclass
class Encoder:
  model: keras.Model
  pretrain: PretrainConfig  # the pre-training run's config
  source: str  # what results.json records as "encoder"

  @property
  def name(self) -> str:
    return self.pretrain.model.encoder.name


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
  checkpoints.checkpoint_path(model_dir, step)  # a clear error when there is none
  _, model = checkpoints.load_averaged_model(model_dir, step)
  source = model_dir if step is None else f"{model_dir}@{step}"
  return Encoder(model.encoder, config, source)


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
