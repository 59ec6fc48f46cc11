"""Frozen configuration dataclasses: the single home of every default.

A default is written once, in a field below. Flags (`flags/`) take their
defaults from these fields; presets are plain functions returning configs.

Glossary used across the package:
  B       batch of images
  H, W    image height / width in pixels
  C       image channels (3)
  Gh, Gw  patch-grid rows / columns
  P       patch size in pixels
  D       encoder feature depth
  T       target depth of the CPC head (`target_dim`)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from cpc_tf.detection import config as detection_config
from cpc_tf.detection.config import DetectorConfig

DIRECTIONS = ("down", "up", "right", "left")
# "layer" normalises over C at each position; "layer_example" over (H, W, C) per
# example (the other reading, SPEC 7; see LAYER_NORM_READINGS in the ladder block).
NORMS = ("layer", "layer_example", "batch", "none")
PIPELINES = ("v1", "v2")  # per-patch recipes: arXiv v1 4.1, supp. A
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")  # Keras dtype policies
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")  # cpc_tf.distribute
LR_DECAYS = ("none", "cosine")
# Classifier weight decay (supp. C.1, SPEC 7): "l2" adds wd * sum(w^2) / 2 to the
# loss (TF1's l2_regularizer, as TF1-era code of the paper's time did); "decoupled" is
# Keras' `weight_decay` (w -= lr * wd * w), about 10x weaker under momentum 0.9.
WEIGHT_DECAY_MODES = ("l2", "decoupled")
# Batch-norm momentum of the evaluation heads and supervised baselines: Keras'
# default; the paper states none. Moving statistics average the last ~1/(1-m)
# steps, so a run of a few hundred steps at 0.99 is evaluated with statistics
# still partly at their initial values: the short Fashion-MNIST presets use 0.9.
BN_MOMENTUM = 0.99
EFFICIENT_IMAGE_SIZE = 224  # supp. C: Inception crops, 224 px as in Szegedy et al.
DETECTION_IMAGE_SIZE = 600  # Faster R-CNN scale (Ren et al. 2015); longer side here


@dataclass(frozen=True)
class GridConfig:
  """Image -> patch grid geometry (supp. A: 300 -> crop 260, 80 px, stride 36)."""

  image_size: int = 260  # side of the square crop that is cut into patches
  patch_size: int = 80
  stride: int = 36
  resize_to: int = 300  # pre-training resizes to this, then random-crops

  @property
  def grid_size(self) -> int:
    """Patches along one side; raises if patch size and stride do not tile."""
    excess = self.image_size - self.patch_size
    if self.patch_size <= 0 or self.stride <= 0 or excess < 0 or excess % self.stride:
      raise ValueError(
          f"A {self.patch_size}px patch with stride {self.stride} does not tile a "
          f"{self.image_size}px image: need (image_size - patch_size) % stride == 0 "
          f"and patch_size <= image_size. Pick e.g. image_size="
          f"{self.patch_size + max(excess, 0) // max(self.stride, 1) * max(self.stride, 1)}.")
    return excess // self.stride + 1


@dataclass(frozen=True)
class EncoderConfig:
  """ResNet-v2 encoder; `name` is a key of `cpc_tf.resnet.SPECS`."""

  name: str = "resnet161"
  norm: str = "layer"  # ICLR 4.1: layer norm, batch norm lets patches cheat
  symmetric_padding: bool = True  # arXiv v1 4.2
  # Recompute each residual stack's activations in the backward pass
  # (tf.recompute_grad): less memory for about one more forward pass of the
  # stacks. Not in the paper; the same gradients either way.
  remat: bool = False

  def __post_init__(self):
    if self.norm not in NORMS:
      raise ValueError(f"Unknown norm {self.norm!r}; choose one of {NORMS}.")


@dataclass(frozen=True)
class ContextConfig:
  """Masked PixelCNN context network (ICLR A.2)."""

  num_blocks: int = 5
  hidden_dim: int = 256


@dataclass(frozen=True)
class HeadConfig:
  """CPC / InfoNCE head (ICLR A.2, supp. A)."""

  target_dim: int = 64
  emb_scale: float = 0.1
  steps_to_ignore: int = 2
  steps_to_predict: int = 3
  directions: tuple[str, ...] = DIRECTIONS
  context: ContextConfig = field(default_factory=ContextConfig)

  def __post_init__(self):
    bad = [d for d in self.directions if d not in DIRECTIONS]
    if bad or not self.directions or len(set(self.directions)) != len(self.directions):
      raise ValueError(
          f"directions={self.directions!r}: give a non-empty subset of {DIRECTIONS} "
          "without repeats.")
    if not 0 <= self.steps_to_ignore < self.steps_to_predict:
      raise ValueError(
          f"steps_to_ignore={self.steps_to_ignore}, steps_to_predict="
          f"{self.steps_to_predict}: need 0 <= steps_to_ignore < steps_to_predict "
          "(offsets range(steps_to_ignore, steps_to_predict) must be non-empty).")

  @property
  def min_grid_rows(self) -> int:
    """Smallest grid side for which every offset keeps at least one prediction."""
    return self.steps_to_predict + 1


@dataclass(frozen=True)
class ModelConfig:
  """Images -> patch grid -> encoder -> latent grid -> CPC head."""

  grid: GridConfig = field(default_factory=GridConfig)
  encoder: EncoderConfig = field(default_factory=EncoderConfig)
  head: HeadConfig = field(default_factory=HeadConfig)

  def __post_init__(self):
    """Raises a clear error if the grid cannot be cut or is too small for the offsets."""
    if self.grid.resize_to < self.grid.image_size:
      # Pre-training random-crops image_size out of the image resized to resize_to:
      # caught here, not as a crop error deep inside tf.data.
      raise ValueError(
          f"grid.image_size={self.grid.image_size} exceeds grid.resize_to="
          f"{self.grid.resize_to}: the {self.grid.image_size}px crop is cut from the image "
          f"resized to {self.grid.resize_to}px. Set resize_to >= image_size too "
          f"(--resize_to={self.grid.image_size}, or model.grid.resize_to in Python).")
    g = self.grid.grid_size
    if g < self.head.min_grid_rows:
      raise ValueError(
          f"A {g}x{g} patch grid is too small for steps_to_predict="
          f"{self.head.steps_to_predict}: the largest offset predicts "
          f"{self.head.steps_to_predict} rows ahead, so the grid needs at least "
          f"{self.head.min_grid_rows} rows. Lower steps_to_predict or use a larger "
          "image / smaller stride.")


@dataclass(frozen=True)
class AugmentConfig:
  """Per-patch augmentation switches (supp. A steps 1-4; arXiv v1 4.1).

  Every step can be switched off for ablations by setting its probability to 0
  (or the boolean to False).
  """

  # supp. A step 1: two random AutoAugment / RandAugment operations per patch.
  randaugment: bool = True
  randaugment_num_ops: int = 2
  # supp. A step 2.
  elastic_p: float = 0.2
  histogram_p: float = 0.2
  # supp. A step 3: Inception colour augmentation.
  inception_color_p: float = 0.8
  # supp. A step 4.
  grayscale_p: float = 0.25
  # arXiv v1 4.1 (v1 era): colour dropping, horizontal flip, spatial jitter.
  color_drop_p: float = 0.0
  flip_p: float = 0.0
  jitter_size: int = 0  # 0 = off; v1: random 56x56 crop padded back to 64x64
  # Step 1 strength on RandAugment's 0-10 scale: M=9 is RandAugment's ImageNet
  # ResNet-50 setting (Cubuk et al. 2019, N=2, M=9); op ranges in augment/ops.py.
  randaugment_magnitude: float = 9.0
  # Step 2 (De Fauw et al. 2018 primitives): smooth displacement field drawn on an
  # elastic_grid x elastic_grid control grid, std elastic_sigma * P, plus a shear
  # drawn uniformly in +-elastic_shear on each axis.
  elastic_sigma: float = 0.03
  elastic_grid: int = 4
  elastic_shear: float = 0.2
  # Step 2 colour histogram: random monotone per-channel curve with
  # histogram_knots segments whose slopes are exp(histogram_strength * N(0, 1)).
  histogram_knots: int = 4
  histogram_strength: float = 0.5
  # Step 3 ranges: tf-slim inception_preprocessing.distort_color (Szegedy et al.).
  color_brightness: float = 32.0 / 255.0  # max |delta|
  color_saturation: float = 0.5  # factor in [1 - s, 1 + s]
  color_hue: float = 0.2  # max |delta| in turns of the colour wheel
  color_contrast: float = 0.5  # factor in [1 - c, 1 + c]

  def __post_init__(self):
    probs = {n: getattr(self, n) for n in (
        "elastic_p", "histogram_p", "inception_color_p", "grayscale_p",
        "color_drop_p", "flip_p")}
    bad = {n: v for n, v in probs.items() if not 0.0 <= v <= 1.0}
    if bad:
      raise ValueError(f"Augmentation probabilities must lie in [0, 1]; got {bad}.")
    if self.randaugment_num_ops < 0 or self.jitter_size < 0 or self.elastic_grid < 2:
      raise ValueError(
          f"randaugment_num_ops={self.randaugment_num_ops}, jitter_size="
          f"{self.jitter_size}, elastic_grid={self.elastic_grid}: need num_ops >= 0, "
          "jitter_size >= 0 and elastic_grid >= 2.")
    if not 0.0 <= self.randaugment_magnitude <= 10.0:
      raise ValueError(
          f"randaugment_magnitude={self.randaugment_magnitude} is on RandAugment's "
          "0-10 scale; pick a value in [0, 10].")
    if self.histogram_knots < 1:
      raise ValueError(f"histogram_knots={self.histogram_knots}: need at least 1.")


@dataclass(frozen=True)
class OptimizerConfig:
  """Adam + global-norm clipping + Polyak averaging (supp. A)."""

  learning_rate: float = 4e-4
  beta_1: float = 0.8
  beta_2: float = 0.999
  epsilon: float = 1e-8
  clip_norm: float = 0.01
  polyak_decay: float = 0.9999
  warmup_steps: int = 0  # off by default; the paper states no schedule
  decay: str = "none"  # "none" or "cosine" (after warm-up, to 0 at the last step)

  def __post_init__(self):
    if self.clip_norm <= 0:
      raise ValueError(f"clip_norm={self.clip_norm}: need a positive global norm.")
    if self.decay not in LR_DECAYS or self.warmup_steps < 0:
      raise ValueError(f"decay={self.decay!r}, warmup_steps={self.warmup_steps}: choose "
                       f"decay in {LR_DECAYS} and warmup_steps >= 0.")
    if not 0.0 <= self.polyak_decay < 1.0:
      raise ValueError(f"polyak_decay={self.polyak_decay}: need 0 <= decay < 1.")


@dataclass(frozen=True)
class DataConfig:
  """Where pre-training images come from.

  `source` is "fashion_mnist" (the embedded default, read from the Debian
  package's files), "folder" (a user's image folder at `path`) or a TFDS name
  (e.g. "imagenet2012", "stl10").
  """

  source: str = "imagenet2012"
  split: str = "train"
  data_dir: str | None = None  # TFDS data dir
  path: str | None = None  # image folder, or Fashion-MNIST files directory
  pipeline: str = "v2"  # "v2" (supp. A) or "v1" (arXiv v1 4.1)
  max_examples: int = 0  # 0 = all; >0 takes the first N (small CPU runs)
  shuffle_buffer: int = 10_000
  # Folders (cpc_tf.data.splits): a test folder beside `path`; without one (and
  # without path/test/) a seeded class-stratified share is held out as "test".
  test_path: str | None = None
  test_fraction: float = 0.1  # our choice (the paper uses ImageNet's own splits)
  split_seed: int = 0

  def __post_init__(self):
    if self.pipeline not in PIPELINES:
      raise ValueError(f"pipeline={self.pipeline!r}; choose one of {PIPELINES}.")


@dataclass(frozen=True)
class ProbeConfig:
  """Online k-nearest-neighbour probe during pre-training (`cpc_tf.probe`; issue 10).

  Every `every_steps` steps the chief encodes `memory_size` + `query_size`
  disjoint labelled images of `split` and classifies each query by a
  k-nearest-neighbour vote (cosine similarity) over the memory. Not in the
  paper: a cheap view of what the encoder learns while it trains. On in
  fashion_mnist_small; off in the other presets (tiny: the tests' config stays
  fast; at paper scale the chief alone would encode the set outside the
  distributed step; ImageNet's train split has labels: --probe_every turns it on).
  """

  every_steps: int = 0  # 0 = off
  k: int = 10  # neighbours that vote
  # "" = the pre-training data (DataConfig source, path, data_dir); else a
  # DataConfig.source ("fashion_mnist", "folder" with `path`, a TFDS name).
  source: str = ""
  path: str | None = None  # image folder or Fashion-MNIST directory of `source`
  # A split with labels; pre-training never reads labels, so drawing the probe
  # from its own (training) split keeps the test split unseen.
  split: str = "train"
  # Sized for fashion_mnist_small on 2 CPU cores: 375 images every 300-400
  # steps cost a few % of the run (README); a larger or many-class set needs more.
  memory_size: int = 250  # reference images whose labels vote
  query_size: int = 125  # images classified; top-1 over them is probe/knn_top1
  batch_size: int = 256  # images per encoder call
  seed: int = 0  # draws the two disjoint sets

  def __post_init__(self):
    sizes = {"every_steps": self.every_steps, "memory_size": self.memory_size,
             "query_size": self.query_size, "batch_size": self.batch_size}
    if self.every_steps < 0 or min(self.memory_size, self.query_size, self.batch_size) < 1:
      raise ValueError(f"probe {sizes}: need every_steps >= 0 (0 = off) and sizes >= 1.")
    if not 1 <= self.k <= self.memory_size:
      raise ValueError(f"probe k={self.k}: need 1 <= k <= memory_size={self.memory_size} "
                       "(the neighbours come from the memory set).")
    if self.path and not self.source:
      raise ValueError(f"probe path={self.path!r} without a probe source: the path belongs "
                       "to a source, e.g. source='folder' (--probe_source=folder:PATH).")
    if not self.split:
      raise ValueError("probe split='': name the labelled split to draw from, e.g. 'train'.")


@dataclass(frozen=True)
class PretrainConfig:
  """Everything a pre-training run needs; written as JSON into model_dir."""

  model: ModelConfig = field(default_factory=ModelConfig)
  augment: AugmentConfig = field(default_factory=AugmentConfig)
  optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
  data: DataConfig = field(default_factory=DataConfig)
  batch_size: int = 512  # global batch (supp. A)
  epochs: float = 200.0
  train_steps: int = 0  # >0 overrides epochs
  checkpoint_every: int = 1000
  keep_checkpoints: int = 3
  log_every: int = 100
  seed: int = 0
  # Loss, gradients and weights stay float32 under the mixed policies.
  precision: str = "float32"  # "float32", "mixed_bfloat16" or "mixed_float16"
  # ICLR A.2: negatives are every patch of every image in the (global) batch.
  # At paper scale (supp. A: 512 images over 32 workers, 6x6 grid) global means
  # 512 x 36 = 18,432 candidates per prediction, per replica 16 x 36 = 576: the
  # global reading is the harder task but gathers targets across replicas.
  cross_replica_negatives: bool = True
  steps_per_loop: int = 1  # training steps per tf.function call (host overhead on TPU)
  probe: ProbeConfig = field(default_factory=ProbeConfig)  # off unless every_steps > 0

  def __post_init__(self):
    if self.batch_size <= 0:
      raise ValueError(f"batch_size={self.batch_size}: the global batch must be a positive "
                       "multiple of the replicas in sync.")
    for name in ("checkpoint_every", "keep_checkpoints", "log_every", "steps_per_loop"):
      if getattr(self, name) <= 0:
        raise ValueError(f"{name}={getattr(self, name)}: need a positive value.")
    if self.precision not in PRECISIONS:
      raise ValueError(f"precision={self.precision!r}: choose one of {PRECISIONS}.")


def replace(config, **changes):
  """`dataclasses.replace` that accepts dotted paths: replace(c, **{"model.head.target_dim": 8})."""
  nested: dict[str, dict] = {}
  flat = {}
  for key, value in changes.items():
    head, _, rest = key.partition(".")
    if rest:
      nested.setdefault(head, {})[rest] = value
    else:
      flat[key] = value
  for head, sub in nested.items():
    flat[head] = replace(flat.get(head, getattr(config, head)), **sub)
  return dataclasses.replace(config, **flat)


def to_dict(config) -> dict:
  return dataclasses.asdict(config)


def from_dict(cls, data: dict):
  """Inverse of `to_dict` for the dataclasses of this module (all fields have defaults)."""
  defaults = cls()
  kwargs = {}
  for name, value in data.items():
    if not hasattr(defaults, name):
      raise ValueError(f"Unknown field {name!r} for {cls.__name__}.")
    default = getattr(defaults, name)
    if dataclasses.is_dataclass(default) and isinstance(value, dict):
      value = from_dict(type(default), value)
    elif isinstance(value, list):
      value = tuple(value)
    kwargs[name] = value
  return cls(**kwargs)


# ----------------------------------------------------------------------------
# Presets. Each returns a PretrainConfig.

def cpc_v2_paper() -> PretrainConfig:
  """CPC v2 as in supp. A: ResNet-161, 260 px / 80 / 36 grid, 4 directions.

  Command: python -m launch.pretrain --preset=cpc_v2_paper --dataset=imagenet2012
    --data_dir=... --model_dir=... --strategy=tpu
  """
  return PretrainConfig()


def fashion_mnist_small() -> PretrainConfig:
  """The embedded data's pre-training, sized for the claim study on 2 CPU cores.

  Fashion-MNIST 28 px images are resized to 32 px and cut into a 7x7 grid of
  8 px patches (stride 4). With stride = patch/2 only the first offset
  overlaps, so steps_to_ignore=1 (predict 2 and 3 rows ahead) mirrors supp. A's
  choice of skipping overlapping offsets. Chosen on a 5k-image validation carve
  of the training split (a linear probe of the frozen features; the test split
  was not read):
    - encoder `compact` (one bottleneck block per stack, layer norm,
      symmetric padding) rather than the two-block `small`: about 2.7x the
      images per second, so more steps fit; 1200 steps of it at lr 2e-3 gave
      78.2% against small's 77.8% after 900 steps at 1e-3 (random inits: 67.3%
      and 68.9%);
    - no v1 spatial jitter (supp. A has none either): without it 79.7% instead
      of 78.2%, measured while the probe's patches had no jitter frame (before
      LinearEvalConfig.match_test_patches). Horizontal flips (arXiv v1) stay.
  Larger lr and looser clip / averaging than supp. A: a short run.

  Command: bash scripts/pretrain.sh   (see README). The claim study pre-trains
    fashion_mnist_study, this preset with a wider last stack and no flips.
  Measured (2026-11-22, the study's stage on the quiet 2-core machine): 0.14
  s/step, 168 s for the 1100 steps; the loss (2 directions x 2 offsets,
  log(16*49) = 6.66 each at chance, 26.6 in all) falls to 16.7, the mean
  InfoNCE top-1 rises from chance (0.13%) to 8.4%, the kNN probe reads 55.2%.
  """
  return PretrainConfig(
      model=ModelConfig(
          grid=GridConfig(image_size=32, patch_size=8, stride=4, resize_to=32),
          encoder=EncoderConfig(name="compact"),
          head=HeadConfig(target_dim=32, steps_to_ignore=1, steps_to_predict=3,
                          directions=("down", "up"),
                          context=ContextConfig(num_blocks=2, hidden_dim=64))),
      augment=AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                            inception_color_p=0.0, grayscale_p=0.0, flip_p=0.5),
      optimizer=OptimizerConfig(learning_rate=2e-3, clip_norm=1.0, polyak_decay=0.99),
      data=DataConfig(source="fashion_mnist", pipeline="v1", shuffle_buffer=5000),
      batch_size=16,
      epochs=1.0,
      train_steps=1100,
      checkpoint_every=275,
      log_every=20,
      probe=ProbeConfig(every_steps=275))  # cost share: see ProbeConfig


def fashion_mnist_study() -> PretrainConfig:
  """The claim study's pre-training: fashion_mnist_small, retuned on a validation carve.

  Two changes, chosen on a 5k-image validation carve of the training split
  (logistic regression on the grid means of 10k other training images; the test
  split was not read):
    - encoder `compact_wide` (the last stack 4x wider, 1024 maps): 86.5%
      against compact's 83.4% at 1500 steps (random inits: 74.6% and 70.9%);
      compact needs 3000 steps for 85.0%;
    - no flips, as supp. A's CPC v2 (83.4% against 84.1% with them at 1500
      steps, within the carve's noise): the linear evaluation's patches are
      then its training patches, so it trains from cached grid means to
      convergence (linear_eval_fashion_mnist).
  1500 steps of 16 images.

  Command: python -m launch.pretrain --preset=fashion_mnist_study
    --model_dir=runs/fashion_mnist_study   (the first stage of bash scripts/study.sh)
  Measured (2026-12-05, in the study, quiet 2-core machine): 318 s for the 1500
  steps (0.21 s/step, probe included); linear evaluation 84.9% test top-1.
  """
  return replace(fashion_mnist_small(), **{
      "model.encoder.name": "compact_wide", "augment.flip_p": 0.0, "train_steps": 1500})


def tiny() -> PretrainConfig:
  """Seconds-long config for tests: 32 px images, 4x4 grid of 8 px patches."""
  return PretrainConfig(
      model=ModelConfig(
          grid=GridConfig(image_size=32, patch_size=8, stride=8, resize_to=32),
          encoder=EncoderConfig(name="tiny"),
          head=HeadConfig(target_dim=8, steps_to_ignore=0, steps_to_predict=2,
                          directions=DIRECTIONS,
                          context=ContextConfig(num_blocks=1, hidden_dim=8))),
      augment=AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                            inception_color_p=0.0, grayscale_p=0.0),
      optimizer=OptimizerConfig(learning_rate=1e-3, clip_norm=1.0, polyak_decay=0.9),
      data=DataConfig(source="fashion_mnist", pipeline="v1", max_examples=64,
                      shuffle_buffer=64),
      batch_size=4,
      train_steps=4,
      checkpoint_every=2,
      log_every=1)


DEFAULT_PRESET = "fashion_mnist_small"  # what launch/pretrain.py runs without --preset
PRESETS = {
    "cpc_v2_paper": cpc_v2_paper,
    "fashion_mnist_small": fashion_mnist_small,
    "fashion_mnist_study": fashion_mnist_study,
    "tiny": tiny,
}

# Former preset names -> what to use instead (preset() refuses them by name).
REMOVED_PRESETS = {
    "cpc_v1_paper": "it matched neither model it was named after; use 'cpc_v1' (the "
                    "original CPC, ICLR 4.1) or 'cpc_v2_arxiv_v1' (arXiv v1 4.1-4.2)",
}


def preset(name: str) -> PretrainConfig:
  if name in REMOVED_PRESETS:
    raise ValueError(f"Preset {name!r} was removed: {REMOVED_PRESETS[name]}.")
  if name not in PRESETS:
    raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
  return PRESETS[name]()


# Evaluation protocols (supp. B, C).

@dataclass(frozen=True)
class LinearEvalConfig:
  """Linear classification on the frozen patch grid (supp. B, ICLR A.3).

  The pre-training pipeline (grid and augmentation) is read from the encoder's
  model_dir; `grid` may swap the geometry for one of `patches.PRESET_GRIDS`.
  """

  data: DataConfig = field(default_factory=DataConfig)  # training split
  test_split: str = "validation"  # ImageNet's public validation set is the test set
  grid: str = "pretrain"  # "pretrain" or a key of cpc_tf.patches.PRESET_GRIDS
  # > 0 replaces that field of `grid` (0 keeps it); checked before any data is read.
  grid_image_size: int = 0
  grid_patch_size: int = 0
  grid_stride: int = 0
  batch_size: int = 512  # global batch (supp. B)
  learning_rate: float = 5e-4  # supp. B: Adam
  # Not stated in the paper: about 20 epochs of ImageNet at batch 512.
  train_steps: int = 50_000
  eval_every: int = 5_000  # checkpoint (and log) every N steps
  # > 0: budgets in epochs of the labelled training images, capped by train_steps /
  # eval_every (`loop.epoch_budget`): the same passes over the data whatever its size.
  train_epochs: float = 0.0
  eval_every_epochs: float = 0.0
  patience: int = 0  # > 0 (with validation): stop after N validations without a gain
  eval_batch_size: int = 512
  encoder: str = ""  # expected encoder architecture; "" accepts the model_dir's
  seed: int = 0
  # > 0: that many training images (seeded, class-stratified) are held out, the
  # head is validated every eval_every steps and the best step is tested. supp.
  # B selects nothing on ImageNet (0); small runs pick their budget this way.
  validation_size: int = 0
  bn_momentum: float = BN_MOMENTUM  # the head's batch norm (BN_MOMENTUM)
  # Encoders whose every training patch had a v1 mark (jitter; colour drop, flip at p=1):
  # validation and test patches get its deterministic form (augment.test_form). The
  # texts are silent on test patches (arXiv v1 4.1); plain ones are a train/test shift.
  match_test_patches: bool = True
  # Encode every image once and train the head on the cached grid means (`PooledLinear`),
  # so that it can run to convergence at the cost of one encoder pass. Exact to supp. B
  # only where pre-training has no augmentation and its crop is the whole image (the
  # training patches are then the evaluation patches); refused otherwise.
  cache_features: bool = False

  def __post_init__(self):
    _check_momentum(self.bn_momentum)
    if self.validation_size < 0:
      raise ValueError(f"validation_size={self.validation_size}: need 0 (no validation, "
                       "supp. B) or a number of training images to hold out.")
    _check_epochs(train_epochs=self.train_epochs, eval_every_epochs=self.eval_every_epochs,
                  patience=self.patience)
    sizes = {"grid_image_size": self.grid_image_size,
             "grid_patch_size": self.grid_patch_size, "grid_stride": self.grid_stride}
    bad = [f"{k}={v}" for k, v in sizes.items() if v < 0]
    if bad:
      raise ValueError(f"{', '.join(bad)}: grid sizes are pixels > 0, or 0 to keep the "
                       f"grid's (--grid={self.grid}).")


@dataclass(frozen=True)
class SubsetConfig:
  """Labelled training subset, validation split and test split (supp. C).

  On TFDS imagenet2012 the 1% and 10% fractions use the standard
  `imagenet2012_subset/1pct` and `/10pct` subsets; everywhere else a seeded,
  class-balanced subset is drawn and its example ids written to output_dir.
  """

  data: DataConfig = field(default_factory=DataConfig)  # the full training split
  test_split: str = "validation"  # touched only for the final report
  label_fraction: float = 1.0  # in (0, 1]; paper: 0.01 ... 1.0
  seed: int = 0  # draws the subset and the validation split
  # supp. C.1: ~10k images removed from the training set for model selection.
  validation_size: int = 10_000
  validation_fraction: float = 0.0  # > 0 overrides validation_size (small datasets)

  def __post_init__(self):
    if not 0.0 < self.label_fraction <= 1.0:
      raise ValueError(
          f"label_fraction={self.label_fraction}: must lie in (0, 1], e.g. 0.01 for 1% "
          "of the labels or 1.0 for all of them.")
    if not 0.0 <= self.validation_fraction < 1.0 or self.validation_size < 0:
      raise ValueError(
          f"validation_fraction={self.validation_fraction}, validation_size="
          f"{self.validation_size}: need 0 <= fraction < 1 and size >= 0.")


@dataclass(frozen=True)
class HParams:
  """One point of the supp. C.1 search (SGD on the classifier)."""

  learning_rate: float = 0.1
  weight_decay: float = 1e-4
  dropout: float = 0.5
  batch_per_replica: int = 32

  def __post_init__(self):
    if not 0.0 <= self.dropout < 1.0:
      raise ValueError(f"dropout={self.dropout}: need 0 <= dropout < 1 (a rate of 1 "
                       "drops every feature).")
    if self.learning_rate <= 0 or self.weight_decay < 0 or self.batch_per_replica <= 0:
      raise ValueError(
          f"learning_rate={self.learning_rate}, weight_decay={self.weight_decay}, "
          f"batch_per_replica={self.batch_per_replica}: need lr > 0, decay >= 0, batch > 0.")


@dataclass(frozen=True)
class SweepConfig:
  """The supp. C.1 grid; `size` points of it are trained, the best on validation wins.

  size 1 trains only the config's own HParams; size N > 1 the first N points of
  the grid shuffled with `seed`; 0 the whole grid (3 x 4 x 4 x 2 = 96 points).
  """

  learning_rates: tuple[float, ...] = (0.05, 0.1, 0.2)
  weight_decays: tuple[float, ...] = (1e-5, 1e-4, 1e-3, 1e-2)  # log-spaced
  # supp. C.1 varies dropout "linearly from 0 to 1"; a rate of 1 would drop
  # every feature, so the grid stops one step short.
  dropouts: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75)
  batch_per_replica: tuple[int, ...] = (16, 32)
  size: int = 1
  seed: int = 0

  def __post_init__(self):
    if self.size < 0:
      raise ValueError(f"sweep size={self.size}: need 0 (whole grid), 1 (the given "
                       "hyper-parameters) or N > 1 (N random grid points).")


@dataclass(frozen=True)
class ClassifierConfig:
  """ResNet classifier on the encoder's feature grid (supp. C.2)."""

  blocks: int = 11
  width: int = 4096  # hidden maps
  bottleneck: int = 1024
  # Not stated in the paper; the head sees whole images, so batch statistics
  # cannot leak between patches (the reason the encoder avoids batch norm).
  norm: str = "batch"
  bn_momentum: float = BN_MOMENTUM  # with norm="batch" (BN_MOMENTUM)

  def __post_init__(self):
    if self.norm not in NORMS:
      raise ValueError(f"Unknown norm {self.norm!r}; choose one of {NORMS}.")
    _check_momentum(self.bn_momentum)


@dataclass(frozen=True)
class EfficientConfig:
  """Few-label classification with a pre-trained CPC encoder (supp. C.2)."""

  subset: SubsetConfig = field(default_factory=SubsetConfig)
  image_size: int = EFFICIENT_IMAGE_SIZE  # 224 px -> a 14x14 grid from the CPC encoders
  # Smallest area of the Inception random-sized training crop (supp. C; 0.08 as in
  # Szegedy et al.); small images (28 px Fashion-MNIST) keep more of the object.
  crop_min_area: float = 0.08
  augment: AugmentConfig = field(default_factory=AugmentConfig)  # per image, supp. C.1
  classifier: ClassifierConfig = field(default_factory=ClassifierConfig)
  hparams: HParams = field(default_factory=HParams)
  sweep: SweepConfig = field(default_factory=SweepConfig)
  momentum: float = 0.9  # SGD momentum; not stated in the paper, the usual value
  weight_decay_mode: str = "l2"  # a WEIGHT_DECAY_MODES reading of supp. C.1's decay
  # Step budgets are not stated in the paper ("till convergence", early stopping).
  frozen_steps: int = 50_000
  finetune_steps: int = 50_000
  # > 0: budgets in epochs of the labelled subset, capped by frozen_steps /
  # finetune_steps / eval_every (`loop.epoch_budget`): the same passes at every fraction.
  frozen_epochs: float = 0.0
  finetune_epochs: float = 0.0
  eval_every_epochs: float = 0.0
  finetune: bool = True  # phase 2
  # supp. C.2: the encoder is fine-tuned with Adam at a smaller rate; the value
  # is ours: a tenth of the pre-training rate (supp. A: 4e-4).
  encoder_learning_rate: float = 4e-5
  # supp. C.2 keeps "the optimization details of each component the same": the
  # encoder's Adam takes pre-training's betas and epsilon (supp. A), not Keras'.
  encoder_beta_1: float = OptimizerConfig.beta_1
  encoder_beta_2: float = OptimizerConfig.beta_2
  encoder_epsilon: float = OptimizerConfig.epsilon
  eval_every: int = 1_000  # validate and checkpoint every N steps
  # Both phases stop after N validations without improvement (0: never), keeping
  # the best validated weights: "till convergence" with early stopping (supp. C).
  patience: int = 5
  eval_batch_size: int = 256
  encoder: str = ""  # expected encoder architecture; "" accepts the model_dir's
  seed: int = 0  # input pipeline

  def __post_init__(self):
    _check_weight_decay_mode(self.weight_decay_mode)
    _check_crop_area(self.crop_min_area)
    _check_epochs(frozen_epochs=self.frozen_epochs, finetune_epochs=self.finetune_epochs,
                  eval_every_epochs=self.eval_every_epochs, patience=self.patience)
    betas = (self.encoder_beta_1, self.encoder_beta_2)
    if not all(0.0 <= b < 1.0 for b in betas) or self.encoder_epsilon <= 0:
      raise ValueError(f"encoder_beta_1={betas[0]}, encoder_beta_2={betas[1]}, "
                       f"encoder_epsilon={self.encoder_epsilon}: Adam needs betas in "
                       "[0, 1) and epsilon > 0 (supp. A: 0.8, 0.999, 1e-8).")


def _check_weight_decay_mode(mode: str) -> None:
  if mode not in WEIGHT_DECAY_MODES:
    raise ValueError(f"weight_decay_mode={mode!r}; choose one of {WEIGHT_DECAY_MODES} "
                     "(l2: an L2 term in the loss; decoupled: Keras' weight_decay).")


@dataclass(frozen=True)
class SupervisedConfig:
  """ResNet-v2 trained from pixels on the same subsets and search (supp. C.1)."""

  subset: SubsetConfig = field(default_factory=SubsetConfig)
  image_size: int = EFFICIENT_IMAGE_SIZE
  crop_min_area: float = 0.08  # as EfficientConfig's: both see the same crops
  augment: AugmentConfig = field(default_factory=AugmentConfig)
  architecture: str = "resnet50_v2"  # a key of cpc_tf.resnet.SPECS
  norm: str = "batch"  # the standard ResNet-v2 of He et al. 2016
  bn_momentum: float = BN_MOMENTUM  # with norm="batch" (BN_MOMENTUM)
  hparams: HParams = field(default_factory=HParams)
  sweep: SweepConfig = field(default_factory=SweepConfig)
  momentum: float = 0.9
  weight_decay_mode: str = "l2"  # a WEIGHT_DECAY_MODES reading of supp. C.1's decay
  train_steps: int = 100_000  # not stated in the paper
  eval_every: int = 1_000
  # > 0: budgets in epochs of the labelled subset, capped by train_steps / eval_every.
  train_epochs: float = 0.0
  eval_every_epochs: float = 0.0
  patience: int = 0  # > 0: stop after N validations without improvement (best kept)
  eval_batch_size: int = 256
  seed: int = 0

  def __post_init__(self):
    _check_weight_decay_mode(self.weight_decay_mode)
    _check_crop_area(self.crop_min_area)
    _check_momentum(self.bn_momentum)
    _check_epochs(train_epochs=self.train_epochs, eval_every_epochs=self.eval_every_epochs,
                  patience=self.patience)


@dataclass(frozen=True)
class PixelConfig:
  """The baselines a sceptic tries first: no pre-training, no network, raw pixels.

  Both read each image whole, resized to image_size x image_size x 3 (no crop)
  and flattened to S*S*3 values in [0, 1], on the same labelled subset,
  validation carve and test split as the few-label cell they sit beside
  (`cpc_tf.eval.pixels`). Every choice is made on the validation carve:
    logistic regression  softmax regression on per-feature standardised pixels,
                         Adam, epochs with early stopping (best validated
                         weights kept), one run per weight decay of the grid;
    kNN                  cosine similarity, majority vote (ties: nearest), k
                         from `ks`.
  """

  image_size: int = 28
  ks: tuple[int, ...] = (1, 3, 5, 10, 20, 50)
  learning_rate: float = 1e-3  # Adam
  batch_size: int = 256
  max_epochs: int = 100
  patience: int = 5  # epochs without a validation gain before stopping
  weight_decays: tuple[float, ...] = (0.0, 1e-4, 1e-3, 1e-2)  # L2 on the weights
  seed: int = 0

  def __post_init__(self):
    if self.image_size < 1 or not self.ks or min(self.ks) < 1:
      raise ValueError(f"image_size={self.image_size}, ks={self.ks}: need a positive "
                       "image size and at least one k >= 1.")
    if self.max_epochs < 1 or self.patience < 1 or self.batch_size < 1:
      raise ValueError(f"max_epochs={self.max_epochs}, patience={self.patience}, "
                       f"batch_size={self.batch_size}: need each >= 1.")
    if not self.weight_decays or min(self.weight_decays) < 0 or self.learning_rate <= 0:
      raise ValueError(f"weight_decays={self.weight_decays}, learning_rate="
                       f"{self.learning_rate}: need decays >= 0 (at least one) and lr > 0.")


def _check_epochs(**values) -> None:
  bad = {k: v for k, v in values.items() if v < 0}
  if bad:
    raise ValueError(f"{bad}: epoch budgets and patience are >= 0 (0: use the step "
                     "budget / never stop early).")


def _check_momentum(momentum: float) -> None:
  if not 0.0 <= momentum < 1.0:
    raise ValueError(f"bn_momentum={momentum}: batch norm's moving-average momentum lies "
                     "in [0, 1) (Keras: 0.99).")


def _check_crop_area(area: float) -> None:
  if not 0.0 < area <= 1.0:
    raise ValueError(f"crop_min_area={area}: the smallest crop is a fraction of the image "
                     "area in (0, 1] (supp. C: 0.08).")


def _tiny_subset(**changes) -> SubsetConfig:
  base = SubsetConfig(data=DataConfig(source="fashion_mnist", max_examples=200,
                                      shuffle_buffer=200),
                      test_split="test", validation_size=0, validation_fraction=0.2)
  return dataclasses.replace(base, **changes)


_NO_AUGMENT = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                            inception_color_p=0.0, grayscale_p=0.0)


# Horizontal flips (p 0.5) after the random-sized crop: the few-label arms' augmentation.
_FLIPS = dataclasses.replace(_NO_AUGMENT, flip_p=0.5)


def linear_eval_paper() -> LinearEvalConfig:
  """supp. B on ImageNet. Paper: 71.5% / 90.1% Top-1 / Top-5 with ResNet-161.

  Command: python -m launch.linear_eval --preset=linear_eval_paper
    --model_dir=... --data_dir=... --output_dir=... --strategy=tpu
  """
  return LinearEvalConfig()


def linear_eval_tiny() -> LinearEvalConfig:
  """Seconds-long linear evaluation on 200 Fashion-MNIST images (tests)."""
  return LinearEvalConfig(
      data=DataConfig(source="fashion_mnist", max_examples=200, shuffle_buffer=200),
      test_split="test", batch_size=16, train_steps=4, eval_every=2, eval_batch_size=64)


def efficient_paper() -> EfficientConfig:
  """supp. C.2 on ImageNet with the full search grid.

  Command: python -m launch.efficient_classification --preset=efficient_paper
    --model_dir=... --data_dir=... --label_fraction=0.01 --output_dir=...
  Paper, Top-1 / Top-5 at 1% labels: 46.3% / 72.9% (fine-tuned).
  """
  return EfficientConfig(sweep=SweepConfig(size=0))


def efficient_tiny() -> EfficientConfig:
  """Seconds-long efficient classification on Fashion-MNIST (tests, CPU demos)."""
  return EfficientConfig(
      subset=_tiny_subset(), image_size=32, augment=_NO_AUGMENT,
      classifier=ClassifierConfig(blocks=1, width=16, bottleneck=8),
      hparams=HParams(batch_per_replica=8), frozen_steps=4, finetune_steps=4,
      eval_every=2, patience=2, eval_batch_size=64)


def supervised_paper() -> SupervisedConfig:
  """supp. C.1 on ImageNet; the paper finds ResNet-152 best.

  Command: python -m launch.supervised_baseline --preset=supervised_paper
    --architecture=resnet152_v2 --data_dir=... --label_fraction=0.01 --output_dir=...
  Paper, Top-5 at 1% labels: 44.1%.
  """
  return SupervisedConfig(sweep=SweepConfig(size=0))


def supervised_tiny() -> SupervisedConfig:
  """Seconds-long supervised baseline on Fashion-MNIST (tests, CPU demos)."""
  return SupervisedConfig(
      subset=_tiny_subset(), image_size=32, augment=_NO_AUGMENT, architecture="tiny",
      hparams=HParams(batch_per_replica=8), train_steps=4, eval_every=2,
      eval_batch_size=64)


# The embedded data at a meaningful scale: the protocols of the claim study
# (cpc_tf.eval.study). The validation images are carved from the 60k training
# images; every final number is on the full 10k test split.

def _fashion_mnist_subset() -> SubsetConfig:
  return SubsetConfig(data=DataConfig(source="fashion_mnist", shuffle_buffer=10_000),
                      test_split="test", validation_size=500)


def linear_eval_fashion_mnist() -> LinearEvalConfig:
  """supp. B on Fashion-MNIST: the frozen encoder's patch grid, BN, 1x1 conv, mean.

  supp. B's optimiser (Adam 5e-4, batch 512) on the 59.5k training images left
  after a 500-image validation carve, from cached grid means (cache_features:
  the study's pre-training has no augmentation, so this is supp. B's pipeline),
  validated every epoch, stopped after 5 epochs without a gain (best validated
  head tested), at most 100 epochs; tested on the 10k test images.

  Command: python -m launch.linear_eval --preset=linear_eval_fashion_mnist
    --model_dir=runs/study/pretrain --output_dir=runs/linear
  Measured: see study_fashion_mnist (README, "The claim on the embedded data").
  """
  return LinearEvalConfig(
      data=DataConfig(source="fashion_mnist", shuffle_buffer=10_000), test_split="test",
      batch_size=512, learning_rate=5e-4, cache_features=True, train_epochs=100,
      eval_every_epochs=1.0, train_steps=1_000_000, eval_every=1_000_000, patience=5,
      eval_batch_size=500, validation_size=500, bn_momentum=0.9)


def efficient_fashion_mnist() -> EfficientConfig:
  """supp. C.2 on Fashion-MNIST: a one-block ResNet head on the 28 px image's grid.

  Each phase: up to 25 epochs of the labelled subset, validated every epoch (at
  most every 100 steps), stopped after 5 validations without a gain, at most
  500 steps: the cap binds at 10% and 100% labels (a 30-minute study on 2
  cores); the study's "How each arm stopped" says where.

  Command: python -m launch.efficient_classification --preset=efficient_fashion_mnist
    --model_dir=runs/study/pretrain --label_fraction=0.01 --output_dir=runs/efficient
  Measured: see study_fashion_mnist.
  """
  return EfficientConfig(
      subset=_fashion_mnist_subset(), image_size=28, crop_min_area=0.5,
      augment=_FLIPS,  # the supervised baseline's augmentation: the same care for both
      classifier=ClassifierConfig(blocks=1, width=128, bottleneck=32, bn_momentum=0.9),
      hparams=HParams(learning_rate=0.1, weight_decay=1e-4, dropout=0.0,
                      batch_per_replica=32),
      sweep=SweepConfig(size=1), frozen_epochs=25, finetune_epochs=25,
      frozen_steps=500, finetune_steps=500, eval_every_epochs=1.0, eval_every=100,
      encoder_learning_rate=1e-4, patience=5, eval_batch_size=500)


def supervised_fashion_mnist() -> SupervisedConfig:
  """supp. C.1 on Fashion-MNIST: the CPC encoder's architecture trained from pixels.

  With the augmentation a sceptic would give it: random-sized crops (half the
  area to all of it) and horizontal flips. Each sweep point: up to 25 epochs,
  validated every epoch (at most every 100 steps), stopped after 5 validations
  without a gain, at most 500 steps (as the CPC classifier's phases); the best
  point on validation is tested.

  Command: python -m launch.supervised_baseline --preset=supervised_fashion_mnist
    --label_fraction=0.01 --output_dir=runs/supervised
  Measured: see study_fashion_mnist.
  """
  return SupervisedConfig(
      subset=_fashion_mnist_subset(), image_size=28, crop_min_area=0.5,
      augment=_FLIPS,
      architecture="compact", bn_momentum=0.9,
      hparams=HParams(learning_rate=0.05, weight_decay=1e-4, dropout=0.0,
                      batch_per_replica=32),
      # supp. C.1's search cut to the learning rate: two points, the rest fixed.
      sweep=SweepConfig(learning_rates=(0.05, 0.1), weight_decays=(1e-4,), dropouts=(0.0,),
                        batch_per_replica=(32,), size=0),
      train_epochs=25, eval_every_epochs=1.0, train_steps=500, eval_every=100,
      patience=5, eval_batch_size=500)


# ----------------------------------------------------------------------------
# Transfer to detection (ICLR 4.3): Faster R-CNN on PASCAL VOC 2007.

DETECTION_BACKBONES = ("pretrained", "random")  # cpc_tf.eval.detection


@dataclass(frozen=True)
class DetectionConfig:
  """Faster R-CNN C4 on a pre-trained (or randomly initialised) encoder (ICLR 4.3).

  `data.source`: "voc/2007" (TFDS), "folder" (a VOCdevkit folder at data.path,
  `cpc_tf.detection.voc_folder`) or "synthetic" (`cpc_tf.detection.synthetic`;
  data.max_examples images, 0 = 4000). Phase 1 trains RPN and box head on the
  frozen backbone, phase 2 everything, the backbone at a smaller rate.
  """

  data: DataConfig = field(default_factory=lambda: DataConfig(
      source="voc/2007", split="trainval", shuffle_buffer=5011))
  test_split: str = "test"  # ICLR 4.3: trainval to train, test to evaluate
  # The paper states no model selection: validation (mAP, best weights kept)
  # runs on this split, at most validation_images of it (0 = all). For VOC07
  # "val" lies inside trainval, so it monitors rather than holds out.
  validation_split: str = "val"
  validation_images: int = 500
  test_images: int = 0  # 0 = the whole test split (synthetic set: 300)
  detector: DetectorConfig = field(default_factory=DetectorConfig)
  image_size: int = DETECTION_IMAGE_SIZE  # longer side, Ren et al. 2015: 600 px
  # Scale augmentation (ICLR 4.3) as zoom factors; None would be the pipeline's.
  scale_range: tuple[float, float] = (0.8, 1.25)  # cpc_tf.augment.scale_with_boxes
  color_drop_p: float = 0.8  # ICLR 4.3 colour dropping; our probability (unstated)
  # "pretrained": the encoder of model_dir (CPC run, export, or a supervised
  # baseline's output_dir); "random": `architecture` from pixels.
  backbone: str = "pretrained"
  architecture: str = "resnet161"  # of a "random" backbone (resnet.SPECS)
  encoder: str = ""  # expected pre-trained architecture; "" accepts the model_dir's
  batch_size: int = 16  # global images per step (not stated; Detectron: 16)
  momentum: float = 0.9  # SGD of the detector heads, the Faster R-CNN optimizer
  learning_rate: float = 0.01  # heads, both phases (Detectron C4 at batch 16: 0.02)
  # Phase 2 updates the backbone with Adam at a smaller rate, as supp. C.2 does
  # for fine-tuned classifiers; the value is ours.
  encoder_learning_rate: float = 4e-5
  # Phase 2 with a batch-norm backbone (a supervised baseline's): False keeps its
  # moving statistics fixed, as He et al. 2016 (appendix A) do when fine-tuning
  # detection; True normalises with the batch's and updates them. The paper is
  # silent; layer norm (the CPC encoders) has no statistics, so it is unaffected.
  backbone_batch_stats: bool = False
  clip_norm: float = 10.0  # guards the early RPN steps; not in the paper
  frozen_steps: int = 20_000  # not stated in the paper
  finetune_steps: int = 20_000
  eval_every: int = 2_000  # validate and checkpoint every N steps
  eval_batch_size: int = 8
  use_difficult: bool = False  # train on VOC "difficult" objects (py-faster-rcnn: no)
  seed: int = 0

  def __post_init__(self):
    if self.backbone not in DETECTION_BACKBONES:
      raise ValueError(f"backbone={self.backbone!r}; choose one of {DETECTION_BACKBONES}.")
    if len(self.scale_range) != 2 or not 0 < self.scale_range[0] <= self.scale_range[1]:
      raise ValueError(f"scale_range={self.scale_range}: need 0 < low <= high.")


def detection_paper() -> DetectionConfig:
  """ICLR 4.3: ResNet-161 CPC encoder, 600 px VOC 2007 trainval -> test.

  Command: python -m launch.detection_transfer --preset=detection_paper
    --model_dir=... --data_dir=... --output_dir=... --strategy=tpu --tpu=NAME
  Paper (Table 3): 70.6 mAP (ResNet-101 encoder), 72.7 (ResNet-161).
  """
  return DetectionConfig()


def detection_synthetic() -> DetectionConfig:
  """CPU demo: the small detector on the synthetic shapes set (128 px images).

  Command: python -m launch.detection_transfer --preset=detection_synthetic
    --output_dir=runs/det
  Measured 2026-11-22 on the 2-core CPU machine (load average 4-6): test mAP@0.5
  0.882 on 300 images after 1000 steps, 6 min 46 s wall in all.
  """
  return DetectionConfig(
      data=DataConfig(source="synthetic", split="train", max_examples=4000),
      test_split="test", validation_split="test", validation_images=100,
      detector=detection_config.synthetic_small(), image_size=128, color_drop_p=0.0,
      scale_range=(1.0, 1.0), backbone="random", architecture="detection_small",
      batch_size=8, learning_rate=0.02, encoder_learning_rate=1e-3,
      frozen_steps=0, finetune_steps=1000, eval_every=250, eval_batch_size=8)


def detection_tiny() -> DetectionConfig:
  """Seconds-long run for tests: 64 px synthetic images, a few steps per phase."""
  small = detection_config.synthetic_small()
  return DetectionConfig(
      data=DataConfig(source="synthetic", split="train", max_examples=32),
      test_split="test", validation_split="test", validation_images=8, test_images=8,
      detector=dataclasses.replace(small, rpn_channels=16, fc_width=32, roi_batch_per_image=16,
                                   rpn_post_nms_top_k_train=32, rpn_post_nms_top_k_test=16),
      image_size=64, color_drop_p=0.0, scale_range=(1.0, 1.0), backbone="random",
      architecture="detection_small", batch_size=2, learning_rate=0.01,
      encoder_learning_rate=1e-4, frozen_steps=2, finetune_steps=2, eval_every=2,
      eval_batch_size=4)


# What each evaluation binary runs without --preset.
DEFAULT_EVAL_PRESETS = {"linear": "linear_eval_tiny", "efficient": "efficient_tiny",
                        "supervised": "supervised_tiny", "detection": "detection_synthetic"}
EVAL_PRESETS = {
    "linear": {"linear_eval_paper": linear_eval_paper, "linear_eval_tiny": linear_eval_tiny,
               "linear_eval_fashion_mnist": linear_eval_fashion_mnist},
    "efficient": {"efficient_paper": efficient_paper, "efficient_tiny": efficient_tiny,
                  "efficient_fashion_mnist": efficient_fashion_mnist},
    "supervised": {"supervised_paper": supervised_paper, "supervised_tiny": supervised_tiny,
                   "supervised_fashion_mnist": supervised_fashion_mnist},
    "detection": {"detection_paper": detection_paper, "detection_synthetic": detection_synthetic,
                  "detection_tiny": detection_tiny},
}


def eval_preset(protocol: str, name: str):
  """The preset `name` of protocol "linear", "efficient", "supervised" or "detection"."""
  if protocol not in EVAL_PRESETS:
    raise ValueError(f"Unknown protocol {protocol!r}; choose one of {sorted(EVAL_PRESETS)}.")
  presets = EVAL_PRESETS[protocol]
  if name not in presets:
    raise ValueError(f"Unknown {protocol} preset {name!r}; choose one of {sorted(presets)}.")
  return presets[name]()


# ----------------------------------------------------------------------------
# Learning dynamics (arXiv v1 7.3, Figure 5).

@dataclass(frozen=True)
class DynamicsConfig:
  """Phase 1 of supp. C.2 (frozen encoder) per pre-training checkpoint and label fraction.

  `efficient` configures each classifier run; its finetune flag and label
  fraction are replaced per cell (cpc_tf.eval.dynamics.cell_config).
  """

  efficient: EfficientConfig = field(default_factory=EfficientConfig)
  # "all": step 0 (the random initialisation) and every checkpoint of model_dir;
  # or the steps themselves.
  steps: str | tuple[int, ...] = "all"
  label_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # supp. C


# ----------------------------------------------------------------------------
# The claim study (ICLR Figure 1 / Table 5 on the embedded data): cpc_tf.eval.study.

@dataclass(frozen=True)
class StudyConfig:
  """Pre-train, then linear and few-label evaluation of CPC against baselines.

  Each cell (label fraction, subset seed) replaces `subset.label_fraction` and
  `subset.seed` of `efficient` and `supervised`, so CPC and the supervised
  baseline see the same labelled images and the same validation split.
  """

  pretrain: PretrainConfig = field(default_factory=PretrainConfig)
  linear: LinearEvalConfig = field(default_factory=LinearEvalConfig)
  efficient: EfficientConfig = field(default_factory=EfficientConfig)
  supervised: SupervisedConfig = field(default_factory=SupervisedConfig)
  # Logistic regression and kNN on raw pixels, on every cell's subset (cpc_tf.eval.pixels).
  pixels: PixelConfig = field(default_factory=PixelConfig)
  label_fractions: tuple[float, ...] = (0.01, 0.1, 1.0)
  # Subset seeds at the smallest fraction (mean ± std); one seed elsewhere.
  seeds: tuple[int, ...] = (0, 1, 2)
  random_init_seed: int = 0  # the random-initialisation encoder of the linear baseline
  # A smoke run: budgets too short for the claim; the report says so at its top.
  smoke: bool = False

  def __post_init__(self):
    bad = [f for f in self.label_fractions if not 0.0 < f <= 1.0]
    if not self.label_fractions or bad or len(set(self.label_fractions)) != len(
        self.label_fractions):
      raise ValueError(f"label_fractions={self.label_fractions!r}: give distinct fractions "
                       "in (0, 1], e.g. (0.01, 0.1, 1.0).")
    if not self.seeds or len(set(self.seeds)) != len(self.seeds):
      raise ValueError(f"seeds={self.seeds!r}: give at least one seed, without repeats.")


def study_fashion_mnist() -> StudyConfig:
  """The README's main job: the claim study on the embedded Fashion-MNIST.

  Pre-training is fashion_mnist_study (fashion_mnist_small retuned on a
  validation carve); linear evaluation trains from cached grid means.

  Command: bash scripts/study.sh   (set-up, then python -m launch.study
    --preset=study_fashion_mnist --output_dir=runs/study)
  Prints the Table-5-shaped table with the pixel baselines, how each arm
  stopped, the targets met or missed and the stage times.
  Measured (2026-12-05, fresh clone, quiet 2-core machine, pip cache warm): 42 min
  4 s in all. Test top-1: CPC linear 84.9% (random init 78.0%, logistic regression
  on pixels 83.8%); at 1% fine-tuned CPC 75.6 ± 0.6% against logistic regression
  on pixels 76.8 ± 1.2%, kNN on pixels 73.4 ± 0.3%, the supervised ResNet 68.8 ±
  2.0%; at 100% CPC 81.5%, kNN on pixels 85.8%. The table and what it shows: the
  README's "The claim on the embedded data".
  """
  return StudyConfig(pretrain=fashion_mnist_study(), linear=linear_eval_fashion_mnist(),
                     efficient=efficient_fashion_mnist(),
                     supervised=supervised_fashion_mnist())


def study_fashion_mnist_quick() -> StudyConfig:
  """A smoke run of the claim study: short budgets, one seed, the 1% and 100% cells.

  Command: bash scripts/study.sh --preset=study_fashion_mnist_quick
  Its report opens with "SMOKE RUN": its budgets are too short for the claim.
  """
  full = study_fashion_mnist()
  return replace(full, **{
      "smoke": True, "label_fractions": (0.01, 1.0), "seeds": (0,),
      "pretrain.train_steps": 300, "pretrain.checkpoint_every": 150,
      "pretrain.probe.every_steps": 150,
      "linear.data.max_examples": 5_000, "linear.train_epochs": 20,
      "efficient.frozen_steps": 60, "efficient.finetune_steps": 60,
      "efficient.eval_every": 20, "supervised.train_steps": 60,
      "supervised.eval_every": 20,
      "pixels.ks": (5,), "pixels.weight_decays": (0.0,), "pixels.max_epochs": 5})


def study_tiny() -> StudyConfig:
  """Seconds per stage (tests): the tiny preset of every protocol, two fractions."""
  linear = dataclasses.replace(linear_eval_tiny(), validation_size=40)
  pixels = PixelConfig(image_size=8, ks=(1, 3), max_epochs=3, patience=1,
                       weight_decays=(0.0, 1e-3))
  return StudyConfig(pretrain=tiny(), linear=linear, efficient=efficient_tiny(),
                     supervised=supervised_tiny(), pixels=pixels,
                     label_fractions=(0.5, 1.0), seeds=(0, 1))


STUDY_PRESETS = {"study_fashion_mnist": study_fashion_mnist,
                 "study_fashion_mnist_quick": study_fashion_mnist_quick,
                 "study_tiny": study_tiny}


def study_preset(name: str) -> StudyConfig:
  if name not in STUDY_PRESETS:
    raise ValueError(f"Unknown study preset {name!r}; choose one of {sorted(STUDY_PRESETS)}.")
  return STUDY_PRESETS[name]()


# ============================================================================
# BEGIN LADDER: the v1 -> v2 study of ICLR 4.1 / Figure 3, and the open readings.
#
# Figure 3 adds one modification at a time to the original CPC. The caption's
# labels, in its order: BU (bottom-up predictions), HF (horizontal patch
# flips), LN (layer norm), RC (random colour dropping), TL (tuned prediction
# lengths), HP (horizontal predictions); then model capacity (ResNet-161),
# larger patches and further patch augmentation (named MC, LP, PA in the
# review of the published version) lead to `cpc_v2_paper`. Each rung is a
# preset that holds every rung before it; `LADDER_LABEL_FIELDS` lists the
# fields each label may change and tests/test_configs.py walks the ladder.

# Prediction-length readings (SPEC 7). Offset i in range(steps_to_ignore,
# steps_to_predict) predicts i + 1 rows ahead (the pseudocode's labels).
PREDICTION_LENGTHS = {
    "pseudocode": (2, 3),  # ICLR A.2 / supp. A defaults: i = 2 only, 3 rows ahead
    "text": (1, 3),  # ICLR 4.1 "k in {2,3}": 2 and 3 rows ahead
    "original": (1, 5),  # ICLR 4.1 "{2,...,5} as was used originally"
}

# Layer-norm readings (SPEC 7): EncoderConfig.norm values, cpc_tf.resnet builds both.
LAYER_NORM_READINGS = {
    "layer": "per position, over C (the package's reading: no statistic crosses positions)",
    "layer_example": "per example, over (H, W, C) (tf.contrib.layers.layer_norm's 2019 default)",
}


def prediction_lengths(reading: str) -> dict:
  """{"model.head.steps_to_ignore": ..., "model.head.steps_to_predict": ...} of a reading."""
  if reading not in PREDICTION_LENGTHS:
    raise ValueError(f"Unknown prediction-length reading {reading!r}; choose one of "
                     f"{sorted(PREDICTION_LENGTHS)}.")
  ignore, predict = PREDICTION_LENGTHS[reading]
  return {"model.head.steps_to_ignore": ignore, "model.head.steps_to_predict": predict}


@dataclass(frozen=True)
class Rung:
  """One bar of Figure 3: a preset made from the previous rung by `changes`."""

  name: str  # preset name
  label: str  # the paper's label
  changes: dict  # dotted PretrainConfig field -> value, applied to the previous rung
  paper: str  # what the texts report for this step


_GRID_FIELDS = ("model.grid.image_size", "model.grid.patch_size", "model.grid.stride",
                "model.grid.resize_to")
_SUPP_A_STEPS = ("augment.randaugment", "augment.elastic_p", "augment.histogram_p",
                 "augment.inception_color_p", "augment.grayscale_p")

# The fields each label names. A rung must change exactly these (a test checks).
LADDER_LABEL_FIELDS = {
    "+BU": ("model.head.directions",),
    "+HF": ("augment.flip_p",),
    "+LN": ("model.encoder.norm",),
    "+RC": ("augment.color_drop_p",),
    "+TL": ("model.head.steps_to_predict",),
    "+HP": ("model.head.directions",),
    "+MC": ("model.encoder.name",),
    "+LP": _GRID_FIELDS + ("augment.jitter_size",),
    "+PA": _SUPP_A_STEPS + ("data.pipeline",),
    "CPC v2": ("augment.color_drop_p", "augment.flip_p", "augment.jitter_size",
               "model.head.steps_to_ignore", "model.encoder.symmetric_padding"),
}

_CPC_V1_CHANGES = {
    "model.encoder.name": "resnet101_cpc_v1",  # ICLR 4.1: first 3 stacks of ResNet-101
    # Seeds silent; ICLR 4.1 measures LN against "architectures that use neither normalization".
    "model.encoder.norm": "none",
    # Seeds silent; arXiv v1 4.2 introduces symmetric padding as a change (zeros before).
    "model.encoder.symmetric_padding": False,
    "model.head.directions": ("down",),  # ICLR 4.1: context from above only
    **prediction_lengths("original"),  # ICLR 4.1: {2,...,5} originally
    # arXiv v1 3.1: 256 px image, 64 px patches, 32 px overlap: 7x7 grid, no crop.
    "model.grid.image_size": 256, "model.grid.patch_size": 64, "model.grid.stride": 32,
    "model.grid.resize_to": 256,
    # ICLR 4.1: the original jitters each patch; the size is arXiv v1 4.1's 56 of 64 px.
    "augment.jitter_size": 56,
    "augment.randaugment": False, "augment.elastic_p": 0.0, "augment.histogram_p": 0.0,
    "augment.inception_color_p": 0.0, "augment.grayscale_p": 0.0,
    "data.pipeline": "v1",
    # Seeds silent on v1's head and optimiser: supp. A's values, so no rung varies them.
}

LADDER = (
    Rung("cpc_v1", "CPC v1", _CPC_V1_CHANGES, "48.7% Top-1 (ICLR Table 1, Fig. 3)"),
    Rung("ladder_bu", "+BU", {"model.head.directions": ("down", "up")},
         "+2% for both models (ICLR 4.1)"),
    # p not stated ("randomly flip"): a fair coin.
    Rung("ladder_hf", "+HF", {"augment.flip_p": 0.5},
         "+1% small model only (ICLR 4.1)"),
    # Per position over C; --norm=layer_example for the per-example reading.
    Rung("ladder_ln", "+LN", {"model.encoder.norm": "layer"},
         "+1% small, +2.5% large model (ICLR 4.1)"),
    # "randomly drops two of the three colour channels in each patch": every patch.
    Rung("ladder_rc", "+RC", {"augment.color_drop_p": 1.0},
         "+1% small, +3% large model (ICLR 4.1)"),
    # The text's {2,3} (steps_to_ignore stays 1); CPC v2's last rung takes the pseudocode's.
    Rung("ladder_tl", "+TL", {"model.head.steps_to_predict": 3},
         "+1% large model (ICLR 4.1)"),
    Rung("ladder_hp", "+HP", {"model.head.directions": DIRECTIONS},
         "+1.5% large, -1% small model (ICLR 4.1)"),
    Rung("ladder_mc", "+MC", {"model.encoder.name": "resnet161"},
         "+5% with the original training, +10% with the new one (ICLR 4.1)"),
    # 80 px patches arrive with supp. A's geometry (300 -> 260 crop, stride 36, 6x6);
    # the jitter keeps arXiv v1's 56/64 fraction of the patch (70 of 80 px).
    Rung("ladder_lp", "+LP", {"model.grid.image_size": 260, "model.grid.patch_size": 80,
                              "model.grid.stride": 36, "model.grid.resize_to": 300,
                              "augment.jitter_size": 70},
         "+2% (review of the published version)"),
    Rung("ladder_pa", "+PA", {"augment.randaugment": True, "augment.elastic_p": 0.2,
                              "augment.histogram_p": 0.2, "augment.inception_color_p": 0.8,
                              "augment.grayscale_p": 0.25, "data.pipeline": "v2"},
         "+4.5% in all (review of the published version)"),
    # supp. A's final list has no colour dropping, flips or jitter; the pseudocode's
    # lengths; symmetric padding from arXiv v1 4.2 (SPEC 7: v2 = supp. A only).
    Rung("cpc_v2_paper", "CPC v2", {"augment.color_drop_p": 0.0, "augment.flip_p": 0.0,
                                    "augment.jitter_size": 0,
                                    "model.head.steps_to_ignore": 2,
                                    "model.encoder.symmetric_padding": True},
         "65.9% Top-1 (ICLR Table 1); 71.5% (review, published version)"),
)

LADDER_NAMES = tuple(r.name for r in LADDER)


def ladder_preset(name: str) -> PretrainConfig:
  """The config of rung `name`: PretrainConfig() with the changes of every rung up to it."""
  if name not in LADDER_NAMES:
    raise ValueError(f"{name!r} is not a rung of the ladder; choose one of {LADDER_NAMES}.")
  config = PretrainConfig()
  for rung in LADDER[:LADDER_NAMES.index(name) + 1]:
    config = replace(config, **rung.changes)
  return config


def cpc_v2_arxiv_v1() -> PretrainConfig:
  """The arXiv v1 model (4.1-4.2): ResNet-170 (= ResNet-161), layer norm, up + down.

  7x7 grid of 64 px patches (arXiv v1 3.1), colour dropping, horizontal flips
  and 56 px jitter, symmetric padding. Prediction lengths are not stated in
  arXiv v1; it predates TL, so the original {2,...,5}.
  """
  return replace(
      ladder_preset("cpc_v1"),
      **{"model.encoder.name": "resnet161", "model.encoder.norm": "layer",
         "model.encoder.symmetric_padding": True,  # arXiv v1 4.2
         "model.head.directions": ("down", "up"),  # separate context networks (arXiv v1 4.1)
         "augment.color_drop_p": 1.0, "augment.flip_p": 0.5})


def _ladder_function(name: str):
  fn = lambda: ladder_preset(name)
  rung = LADDER[LADDER_NAMES.index(name)]
  fn.__name__ = name
  fn.__doc__ = f"Ladder rung {rung.label}: {rung.paper}."
  return fn


# cpc_v2_paper keeps its own function above; the ladder test checks they agree.
PRESETS.update({name: _ladder_function(name) for name in LADDER_NAMES
                if name != "cpc_v2_paper"})
PRESETS["cpc_v2_arxiv_v1"] = cpc_v2_arxiv_v1


def ablation_axes() -> tuple[str, ...]:
  """Every dotted PretrainConfig field that is an ablation axis (SPEC 6).

  All leaves of `model` (but the remat memory switch) and `augment`, the pipeline
  and the negatives; a field
  added to those dataclasses becomes an axis, and tests/test_flags.py then
  requires a flag for it.
  """
  def leaves(value, prefix):
    for f in dataclasses.fields(value):
      child = getattr(value, f.name)
      if dataclasses.is_dataclass(child):
        yield from leaves(child, f"{prefix}{f.name}.")
      else:
        yield f"{prefix}{f.name}"

  base = PretrainConfig()
  not_axes = {"model.encoder.remat"}  # trades memory for time; computes the same step
  return (*(p for p in leaves(base.model, "model.") if p not in not_axes),
          *leaves(base.augment, "augment."), "data.pipeline", "cross_replica_negatives")


@dataclass(frozen=True)
class AblationConfig:
  """A small-scale Figure 3: each preset pre-trained for one budget, then linear eval.

  Every run is the preset, with `data` (pipeline kept from the preset), the
  budget and `overrides` replaced, then `substitutions` mapped: (field, paper
  value, small value) swaps a value wherever a rung holds it, so a rung that
  changes the encoder or the grid still changes something at small scale.
  """

  presets: tuple[str, ...] = LADDER_NAMES
  data: DataConfig = field(default_factory=DataConfig)
  batch_size: int = 512
  train_steps: int = 10_000  # the same budget for every rung; not a paper figure
  overrides: tuple[tuple[str, object], ...] = ()
  substitutions: tuple[tuple[str, object, object], ...] = ()
  linear: LinearEvalConfig = field(default_factory=LinearEvalConfig)
  seed: int = 0

  def __post_init__(self):
    unknown = [p for p in self.presets if p not in PRESETS]
    if not self.presets or unknown:
      raise ValueError(f"presets={self.presets!r}: give a non-empty list of "
                       f"{sorted(PRESETS)} (unknown: {unknown}).")
    if self.train_steps <= 0 or self.batch_size <= 0:
      raise ValueError(f"train_steps={self.train_steps}, batch_size={self.batch_size}: "
                       "both must be > 0 (the budget every rung gets).")


# Small stand-ins for the paper's encoders, grids and jitters (same ratios:
# patch = 2 x stride and 7x7 for v1; about 80/36 and 6x6 for the larger patches).
# +MC doubles the blocks per stack at equal width (compact -> small), as ResNet-161
# doubles stack 3's 23 blocks; its 4x width of stack 3 has no stand-in here.
_FASHION_MNIST_SUBSTITUTIONS = (
    ("model.encoder.name", "resnet101_cpc_v1", "compact"),
    ("model.encoder.name", "resnet161", "small"),
    ("model.grid.image_size", 256, 32), ("model.grid.patch_size", 64, 8),
    ("model.grid.stride", 32, 4), ("model.grid.resize_to", 256, 32),
    ("model.grid.image_size", 260, 30), ("model.grid.patch_size", 80, 10),
    ("model.grid.stride", 36, 4), ("model.grid.resize_to", 300, 34),
    ("augment.jitter_size", 56, 7), ("augment.jitter_size", 70, 9),
)
# A short run: fashion_mnist_small's optimiser and head (see its docstring).
_FASHION_MNIST_OVERRIDES = (
    ("optimizer.learning_rate", 1e-3), ("optimizer.clip_norm", 1.0),
    ("optimizer.polyak_decay", 0.99), ("model.head.target_dim", 32),
    ("model.head.context.num_blocks", 2), ("model.head.context.hidden_dim", 64),
    ("checkpoint_every", 100), ("log_every", 10),
)


def ablation_fashion_mnist() -> AblationConfig:
  """Figure 3 on the embedded Fashion-MNIST with small encoders, 800 steps per rung.

  Command: python -m launch.ablation --preset=ablation_fashion_mnist
    --output_dir=runs/ablation
  Measured (2026-11-22, seed 0, 79 min of wall time with other runs beside it):
  linear test top-1 from 67.4% (CPC v1) through 70.5% (+LN), 70.8% (+MC) and
  61.8% (+PA) to 68.5% (CPC v2); every rung and a second seed in the README.
  """
  return AblationConfig(
      data=DataConfig(source="fashion_mnist", shuffle_buffer=5000),
      batch_size=16, train_steps=800, overrides=_FASHION_MNIST_OVERRIDES,
      substitutions=_FASHION_MNIST_SUBSTITUTIONS,
      # The claim study's linear protocol (500-image validation carve, full 10k test
      # split) with the best of three validated steps; v1 rungs' test patches get their
      # v1 marks in deterministic form (LinearEvalConfig.match_test_patches).
      linear=dataclasses.replace(linear_eval_fashion_mnist(), train_steps=300,
                                 eval_every=100))


def ablation_tiny() -> AblationConfig:
  """Seconds per rung (tests): two rungs, tiny encoders, a few steps."""
  return dataclasses.replace(
      ablation_fashion_mnist(), presets=("cpc_v1", "ladder_bu"),
      data=DataConfig(source="fashion_mnist", max_examples=64, shuffle_buffer=64),
      batch_size=4, train_steps=2,
      overrides=_FASHION_MNIST_OVERRIDES + (
          ("model.head.target_dim", 8), ("model.head.context.num_blocks", 1),
          ("model.head.context.hidden_dim", 8), ("checkpoint_every", 2),
          ("log_every", 1)),
      substitutions=(("model.encoder.name", "resnet101_cpc_v1", "tiny"),
                     ("model.encoder.name", "resnet161", "tiny"),
                     *_FASHION_MNIST_SUBSTITUTIONS[2:]),
      linear=linear_eval_tiny())


ABLATION_PRESETS = {"ablation_fashion_mnist": ablation_fashion_mnist,
                    "ablation_tiny": ablation_tiny}


def ablation_preset(name: str) -> AblationConfig:
  if name not in ABLATION_PRESETS:
    raise ValueError(f"Unknown ablation preset {name!r}; choose one of "
                     f"{sorted(ABLATION_PRESETS)}.")
  return ABLATION_PRESETS[name]()

# END LADDER
# ============================================================================
