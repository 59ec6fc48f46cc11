"""The configuration schema: every frozen dataclass, the one home of every default.

A default is written once, in a field below. Flags (`flags/`) take their
defaults from these fields; presets (the other modules of this package) are
plain functions returning these configs. This module imports nothing of
cpc_tf: it is the bottom layer every other module may read.

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
# Evaluation's forward passes (encoding, validation, test) compiled by XLA: ~2x on
# CPU, the same function up to rounding (cpc_tf/inference.py). Training steps are
# never compiled.
XLA_INFERENCE = True
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
  xla_inference: bool = XLA_INFERENCE  # evaluation's forward passes by XLA (XLA_INFERENCE)

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
  xla_inference: bool = XLA_INFERENCE  # evaluation's forward passes by XLA (XLA_INFERENCE)

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
  xla_inference: bool = XLA_INFERENCE  # evaluation's forward passes by XLA (XLA_INFERENCE)
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

# ----------------------------------------------------------------------------
# Transfer to detection (ICLR 4.3): Faster R-CNN on PASCAL VOC 2007.

# Faster R-CNN hyper-parameters (Ren et al. 2015; ICLR 4.3). Pixel sizes refer to
# the network input (the pipeline's longer side S, 600 px for VOC as in Ren et
# al.). Where Ren et al. and later reference code differ, the field says which
# one is followed and why.
HEADS = ("residual", "fc")
ROI_POOLS = ("max", "avg")

@dataclass(frozen=True)
class DetectorConfig:
  """Every number of the detector; shapes in docstrings use A anchors per cell."""

  # Backbone: the CPC encoder's last stack is at stride 16 (ICLR 4.3, "C4").
  feature_stride: int = 16
  # Anchors, Ren et al. 3.1.1: 3 scales x 3 aspect ratios (h / w) per position.
  anchor_scales: tuple[float, ...] = (128.0, 256.0, 512.0)
  anchor_ratios: tuple[float, ...] = (0.5, 1.0, 2.0)
  # RPN, Ren et al. 3.1.1-3.1.3.
  rpn_channels: int = 512  # 3x3 conv width (Ren et al.: 512 for VGG-16)
  rpn_positive_iou: float = 0.7
  rpn_negative_iou: float = 0.3
  rpn_batch_per_image: int = 256
  rpn_positive_fraction: float = 0.5
  # Ren et al. 3.3: cross-boundary anchors are ignored in training.
  rpn_ignore_cross_boundary: bool = True
  rpn_box_weights: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0)  # Ren et al. eq. 2, unweighted
  rpn_smooth_l1_beta: float = 1.0 / 9.0  # py-faster-rcnn sigma = 3
  rpn_pre_nms_top_k_train: int = 12000  # Ren et al. 3.3
  rpn_post_nms_top_k_train: int = 2000
  rpn_pre_nms_top_k_test: int = 6000
  rpn_post_nms_top_k_test: int = 300  # Ren et al. 4.1: 300 proposals at test time
  rpn_nms_iou: float = 0.7  # Ren et al. 3.3
  rpn_min_size: float = 0.0  # px; proposals smaller than this on a side are dropped
  # RoI head, Fast R-CNN (Girshick 2015) 2.3: 128 RoIs/image as 2 x 64; Detectron and
  # the ResNet C4 design (He et al. 2016 A) use 512 per image, 25% foreground.
  roi_batch_per_image: int = 512
  roi_positive_fraction: float = 0.25
  roi_foreground_iou: float = 0.5
  # Girshick 2015 uses background IoU in [0.1, 0.5) as a hard-mining heuristic;
  # [0, 0.5) as Detectron, since the RPN already proposes near objects.
  roi_background_iou_low: float = 0.0
  # Ground-truth boxes join the proposals in training (Detectron), so the head sees
  # foreground even while the RPN is still poor.
  roi_add_ground_truth: bool = True
  roi_box_weights: tuple[float, ...] = (10.0, 10.0, 5.0, 5.0)  # standard Fast R-CNN weights
  roi_smooth_l1_beta: float = 1.0
  roi_align_size: int = 14  # RoIAlign 14x14, then pooled to 7x7 (ICLR 4.3; He et al. 2017)
  roi_pool: str = "max"  # 14 -> 7 reduction of the "fc" head (TF OD API: 2x2 max pool)
  # Head: "residual" = a new stack at stride 32 on the 14x14 crops, as res5 in the
  # ResNet C4 detector (He et al. 2016 A); "fc" = two fully connected layers.
  head: str = "residual"
  head_blocks: int = 3
  head_width: int = 2048  # residual stream width (res5 of ResNet-101)
  head_bottleneck: int = 512
  fc_width: int = 1024
  # Inference (Ren et al. 4: NMS 0.3; Detectron 0.5; issue 11: 0.3-0.5).
  test_nms_iou: float = 0.3
  test_score_threshold: float = 0.05
  max_detections_per_class: int = 100
  max_detections: int = 100

  def __post_init__(self):
    if self.head not in HEADS:
      raise ValueError(f"Unknown detection head {self.head!r}; choose one of {HEADS}.")
    if self.roi_pool not in ROI_POOLS:
      raise ValueError(f"Unknown roi_pool {self.roi_pool!r}; choose one of {ROI_POOLS}.")
    if self.roi_align_size % 2:
      raise ValueError(f"roi_align_size={self.roi_align_size} must be even (pooled to half).")
    if not self.anchor_scales or not self.anchor_ratios:
      raise ValueError("anchor_scales and anchor_ratios must be non-empty.")
    if min(self.anchor_scales) <= 0 or min(self.anchor_ratios) <= 0:
      raise ValueError("anchor_scales and anchor_ratios must be positive.")
    for name in ("rpn_box_weights", "roi_box_weights"):
      if len(getattr(self, name)) != 4:
        raise ValueError(f"{name} needs 4 weights (y, x, h, w).")
    for name in ("rpn_positive_fraction", "roi_positive_fraction"):
      if not 0.0 < getattr(self, name) <= 1.0:
        raise ValueError(f"{name}={getattr(self, name)} must be in (0, 1].")
    if self.rpn_negative_iou > self.rpn_positive_iou:
      raise ValueError("rpn_negative_iou must not exceed rpn_positive_iou.")

  @property
  def anchors_per_cell(self) -> int:
    return len(self.anchor_scales) * len(self.anchor_ratios)

DETECTION_BACKBONES = ("pretrained", "random")  # cpc_tf.eval.detection


@dataclass(frozen=True)
class DetectionConfig:
  """Faster R-CNN C4 on a pre-trained (or randomly initialised) encoder (ICLR 4.3).

  `data.source`: "voc/2007" (TFDS), "folder" (a VOCdevkit folder at data.path,
  `cpc_tf.data.voc_folder`) or "synthetic" (`cpc_tf.data.synthetic`;
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

# Learning dynamics (arXiv v1 7.3, Figure 5).

@dataclass(frozen=True)
class DynamicsConfig:
  """Phase 1 of supp. C.2 (frozen encoder) per pre-training checkpoint and label fraction.

  `efficient` configures each classifier run; its finetune flag and label
  fraction are replaced per cell (cpc_tf.drivers.dynamics.cell_config).
  """

  efficient: EfficientConfig = field(default_factory=EfficientConfig)
  # "all": step 0 (the random initialisation) and every checkpoint of model_dir;
  # or the steps themselves.
  steps: str | tuple[int, ...] = "all"
  label_fractions: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # supp. C

  def __post_init__(self):
    if self.steps != "all" and (isinstance(self.steps, str) or not self.steps
                                or min(self.steps) < 0):
      raise ValueError(f"steps={self.steps!r}: give 'all' or non-negative pre-training "
                       "steps, e.g. 0,40000,80000.")


# ----------------------------------------------------------------------------

# The claim study (ICLR Figure 1 / Table 5 on the embedded data): cpc_tf.drivers.study.

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
