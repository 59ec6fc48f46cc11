"""ICLR 4.3: transfer to detection, Faster R-CNN on PASCAL VOC 2007.

Glossary: B global batch of images, R replicas in sync, S padded image side,
K object classes.

The backbone (`cpc_tf.eval.encoders`, as the other protocols) is
  * the encoder of a pre-training model_dir or an exported SavedModel
    (results rows "CPC v2 <architecture> (...)");
  * the encoder of a supervised baseline's output_dir
    (`launch/supervised_baseline.py`, supp. C.1), the weights of its best
    sweep point: Table 3's supervised-transfer comparison, trained here on
    the baseline's data rather than ImageNet unless that is its dataset
    (rows "Supervised <architecture> (...)", encoder "supervised:<dir>");
  * or the same architecture randomly initialised (config.backbone="random":
    the from-pixels baseline; rows "Random init <architecture> (...)").
Its last stack must be at stride 16 (checked by `FasterRCNN`): the CPC
encoders (resnet161, resnet101_cpc_v1) and "detection_small" are; "small" and
"tiny" (stride 4) and the four-stack resnet*_v2 (32) are refused.
Supervised transfer on CPU (the baseline first, then its output_dir):
  python -m launch.supervised_baseline --preset=supervised_tiny \
    --architecture=detection_small --output_dir=runs/sup_det
  python -m launch.detection_transfer --preset=detection_synthetic \
    --backbone=pretrained --model_dir=runs/sup_det --output_dir=runs/det_sup
The last stack feeds the detector of `cpc_tf.detection` (`FasterRCNN`).
Both phases train through `cpc_tf.eval.loop`; each validates with the VOC07
11-point mAP and keeps its best weights:
  phase 1  "detection_frozen"    RPN and box head (SGD), backbone frozen
  phase 2  "detection_finetune"  everything; the backbone with Adam at the
                                 smaller config.encoder_learning_rate
A phase of 0 steps is skipped. The final model is tested on config.test_split.

Layout of output_dir (rerunning the same command resumes from it):
  config.json           protocol, backbone source and resolved config; a rerun must match
  frozen/, finetune/    `cpc_tf.eval.loop` phase directories
  results.json          protocol "detection": validation rows of each phase, a test row
"""

from __future__ import annotations

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import data, resnet
from cpc_tf.configs import AugmentConfig, DetectionConfig, EncoderConfig
from cpc_tf.data import sources, synthetic, voc_folder
from cpc_tf.data.errors import DataError
from cpc_tf.detection import detector as detector_lib
from cpc_tf.detection.voc_eval import VOCEvaluator
from cpc_tf.distribute import is_chief
from cpc_tf.eval import encoders, results
from cpc_tf.eval import loop as loop_lib
from cpc_tf.eval import sweep

SYNTHETIC = "synthetic"
SYNTHETIC_TRAIN_IMAGES = 4000  # data.max_examples = 0 on the synthetic set
SYNTHETIC_TEST_IMAGES = 300  # test_images = 0 on the synthetic set (benchmark's count)
METRICS = ("map",)  # what each phase validates and maximises


@dataclasses.dataclass
class Backbone:
  model: keras.Model | encoders.SavedModelEncoder
  feature: str  # its stride-16 output
  source: str  # results.json "encoder"
  method: str  # results row prefix


def load_backbone(model_dir: str | None, config: DetectionConfig,
                  step: int | None = None) -> Backbone:
  """The encoder of model_dir (pre-trained or supervised), or a random one (config.backbone)."""
  if config.backbone == "random":
    if model_dir or step is not None:
      given = f"--model_dir={model_dir}" if model_dir else f"--checkpoint_step={step}"
      raise ValueError(f"{given} was given but backbone='random' trains a "
                       f"{config.architecture} from pixels; drop it, or pass "
                       "--backbone=pretrained.")
    model = resnet.build_encoder(EncoderConfig(name=config.architecture), name="encoder")
    return Backbone(model, resnet.last_stack(model.output.keys()),
                    f"random:{config.architecture}", f"Random init {config.architecture}")
  if not model_dir:
    raise ValueError("backbone='pretrained' needs --model_dir (a pre-training directory, "
                     "an exported SavedModel or a supervised baseline's output_dir); or "
                     "pass --backbone=random for the from-pixels baseline.")
  encoder = encoders.load(model_dir, step, config.encoder)
  # "CPC v2 <name>", or "Supervised <architecture>" for a supervised baseline's
  # output_dir: Table 3's supervised-transfer row.
  return Backbone(encoder.model, resnet.last_stack(encoder.model.output.keys()),
                  encoder.source, encoder.method)


def class_names(config: DetectionConfig) -> tuple[str, ...]:
  """The object classes of config.data; DataError for a source without boxes."""
  if config.data.source == SYNTHETIC:
    return synthetic.CLASS_NAMES
  if config.data.source == "folder":
    return voc_folder.CLASS_NAMES
  names = sources.load(config.data, with_objects=True).class_names
  if names is None:
    raise DataError(f"{config.data.source!r} has no object class names; detection needs "
                    "e.g. 'voc/2007'.")
  return names


def num_train_images(config: DetectionConfig) -> int:
  if config.data.source == SYNTHETIC:
    return config.data.max_examples or SYNTHETIC_TRAIN_IMAGES
  return sources.load(config.data, with_objects=True).num_examples


def check_config(config: DetectionConfig) -> None:
  if config.data.source == SYNTHETIC and (config.color_drop_p > 0
                                         or tuple(config.scale_range) != (1.0, 1.0)):
    raise ValueError("The synthetic set augments with horizontal flips only: set "
                     "color_drop_p=0 (--color_drop_p=0) and scale_range=(1, 1), as the "
                     "detection_synthetic preset does.")


def _without_strings(batch):
  # String ids cannot go to accelerators; the step never reads them.
  return {k: v for k, v in batch.items() if k != "id"}


def train_dataset(config: DetectionConfig, ctx: tf.distribute.InputContext | None,
                  seed: int) -> tf.data.Dataset:
  """Per-replica training batches (dicts of `cpc_tf.data.detection_dataset`), repeated."""
  if config.data.source == SYNTHETIC:
    batch = ctx.get_per_replica_batch_size(config.batch_size) if ctx else config.batch_size
    pipeline = ctx.input_pipeline_id if ctx else 0
    # Every pipeline draws from the same images in its own order (generated set:
    # nothing to shard); the image seed stays fixed so a resumed run (new `seed`)
    # sees the same images reshuffled.
    ds = synthetic.synthetic_detection_dataset(
        num_train_images(config), batch, config.seed, split=config.data.split,
        image_size=config.image_size, order_seed=seed * 1009 + pipeline)
  else:
    ds = data.detection_dataset(
        config.data, config.batch_size, seed, training=True,
        augment=AugmentConfig(color_drop_p=config.color_drop_p),
        image_size=config.image_size, scale_range=tuple(config.scale_range),
        input_context=ctx)
  return ds.map(_without_strings)


def eval_dataset(config: DetectionConfig, split: str, max_images: int,
                 seed: int = 0) -> tf.data.Dataset:
  """One pass over `split` (at most max_images, 0 = all), unaugmented."""
  if config.data.source == SYNTHETIC:
    return synthetic.synthetic_detection_dataset(
        max_images or SYNTHETIC_TEST_IMAGES, config.eval_batch_size, config.seed + seed,
        split=split, training=False, image_size=config.image_size)
  source = dataclasses.replace(config.data, split=split, max_examples=max_images)
  return data.detection_dataset(source, config.eval_batch_size, training=False,
                                image_size=config.image_size)


def evaluate_map(model: detector_lib.FasterRCNN, strategy: tf.distribute.Strategy,
                 dataset: tf.data.Dataset, num_classes: int) -> dict:
  """VOC07 11-point mAP@0.5 over one pass: {"map": float, "ap": [K] array, "count": int}.

  Every replica detects the same whole batch and the first replica's boxes are
  scored on the host (`VOCEvaluator` is NumPy): evaluation is small next to
  training, and this runs unchanged under every strategy.
  """
  detect = tf.function(model.detect)
  evaluator = VOCEvaluator(num_classes)
  count = 0
  for batch in dataset:
    out = strategy.run(detect, args=(batch["image"], batch["image_size"]))
    out = {k: strategy.experimental_local_results(v)[0] for k, v in out.items()}
    evaluator.add_batch(batch["boxes"], batch["labels"], batch["difficult"], out)
    count += int(batch["image"].shape[0])
  result = evaluator.result()
  return {"map": result["map"], "ap": result["ap"], "count": count}


def train_detection(model_dir: str | None, config: DetectionConfig, output_dir: str,
                    strategy: tf.distribute.Strategy | None = None, *,
                    step: int | None = None, stop_after_steps: int | None = None,
                    verbose: bool = True) -> dict:
  """ICLR 4.3 with the encoder of model_dir (or a random one); returns results.json.

  Raises stop.Interrupted after `stop_after_steps` steps (everything saved).
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = is_chief(strategy)
  log = sweep.printer(verbose, chief)
  check_config(config)
  r = strategy.num_replicas_in_sync
  if config.batch_size % r:
    raise ValueError(f"batch_size={config.batch_size} is the global batch; it must be a "
                     f"multiple of the {r} replicas.")
  names = class_names(config)
  with strategy.scope():
    backbone = load_backbone(model_dir, config, step)
    model = detector_lib.FasterRCNN(backbone.model, len(names), config.detector,
                                    feature=backbone.feature)
  sweep.check_run(output_dir, "detection", backbone.source, config, write=chief)
  # Counted by parts: a SavedModel backbone's variables are not Keras weights.
  parts = model.rpn_head.weights + model.box_head.weights + list(backbone.model.weights)
  log(f"detector: {int(sum(np.prod(v.shape) for v in parts)):,} parameters, backbone "
      f"{backbone.source} ({backbone.feature}), {len(names)} classes")
  heads = model.rpn_head.trainable_variables + model.box_head.trainable_variables

  def loss_fn(finetune):
    # The frozen backbone runs in inference mode, so no norm statistic moves in
    # phase 1; phase 2 as config.backbone_batch_stats says.
    backbone_training = finetune and config.backbone_batch_stats

    def fn(m, batch):
      # Each loss is the mean over this replica's batch; the loop divides by R.
      return detector_lib.batch_losses(m, batch, use_difficult=config.use_difficult,
                                       backbone_training=backbone_training)[1]
    return fn

  def validate():
    values = evaluate_map(model, strategy, eval_dataset(
        config, config.validation_split, config.validation_images, seed=1), len(names))
    # NaN (no ground-truth box in the split) would never count as best, and the
    # phase would end without best weights: score it 0 instead.
    return {"map": 0.0 if np.isnan(values["map"]) else values["map"]}

  def sgd():
    return keras.optimizers.SGD(config.learning_rate, momentum=config.momentum)

  budget = loop_lib.Budget(stop_after_steps)

  def train_fn(ctx, seed):
    return train_dataset(config, ctx, seed)

  rows = []
  phases = (("frozen", "detection_frozen", config.frozen_steps),
            ("finetune", "detection_finetune", config.finetune_steps))
  for i, (directory, name, steps) in enumerate(phases):
    if steps <= 0:
      continue
    finetune = name == "detection_finetune"
    with strategy.scope():
      groups = [loop_lib.Group(sgd(), heads)]
      if finetune:
        groups.append(loop_lib.Group(keras.optimizers.Adam(config.encoder_learning_rate),
                                     list(backbone.model.trainable_variables)))
    loop = loop_lib.Loop(model, groups, loss_fn(finetune), strategy,
                         clip_norm=config.clip_norm)
    track = {"rpn": model.rpn_head, "box_head": model.box_head}
    if finetune:
      track["backbone"] = backbone.model
    phase = loop_lib.Phase(os.path.join(output_dir, directory), name, steps,
                           config.eval_every, seed=config.seed + i, metrics=METRICS)
    done = loop_lib.run_phase(loop, phase, train_fn, validate=validate, track=track,
                              budget=budget, log=log)
    label = "fine-tuned" if finetune else "frozen"
    rows.append(results.detection_row(
        f"{backbone.method} ({label})", done["val_map"], None, "validation",
        num_train_images(config)))
  if not rows:
    raise ValueError("frozen_steps and finetune_steps are both 0: nothing to train.")
  test = evaluate_map(model, strategy, eval_dataset(config, config.test_split,
                                                    config.test_images), len(names))
  log(f"test: mAP@0.5 {test['map']:.4f} on {test['count']} images; AP " + ", ".join(
      f"{n} {a:.3f}" for n, a in zip(names, test["ap"])))
  rows.append(results.detection_row(
      rows[-1]["method"], test["map"], dict(zip(names, test["ap"].tolist())), "test",
      num_train_images(config)))
  return sweep.write_results(chief, output_dir, "detection", config.data.source,
                             backbone.source, rows, config)
