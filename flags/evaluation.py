"""absl flags shared by the evaluation binaries, and flags -> evaluation configs.

As in `flags.common`: a run starts from `--preset` (a function in
`cpc_tf.configs.EVAL_PRESETS[protocol]`) and every override flag replaces one
config field ONLY if the user set it. Defaults shown by `--help` are the
dataclass fields' (the one place they are written); the preset may differ.
"""

from __future__ import annotations

from typing import Sequence

import sys

from absl import app
from absl import flags

from cpc_tf import configs, resnet
from cpc_tf.detection import config as detection_config
from cpc_tf.patches import PRESET_GRIDS
from flags import common

CONFIG_CLASSES = {"linear": configs.LinearEvalConfig, "efficient": configs.EfficientConfig,
                  "supervised": configs.SupervisedConfig,
                  "detection": configs.DetectionConfig}

# flag -> (dotted config field, help, allowed values or None), per protocol.
_DATA = {
    "data_dir": ("data.data_dir", "TFDS data directory (TFDS datasets only).", None),
    "split": ("data.split", "Training split (the validation split is carved from it).",
              None),
    "max_examples": ("data.max_examples", "Use only the first N examples of each split; "
                     "0 = all.", None),
}
LINEAR_OVERRIDES = {
    **_DATA,
    "test_split": ("test_split", "Split of the final report (ImageNet: validation).", None),
    "grid": ("grid", "Patch grid: 'pretrain' (the model_dir's) or a preset grid "
             "(ICLR A.3: linear_iclr).", ("pretrain", *sorted(PRESET_GRIDS))),
    "batch_size": ("batch_size", "Global batch over all replicas (supp. B: 512).", None),
    "learning_rate": ("learning_rate", "Adam learning rate (supp. B: 5e-4).", None),
    "train_steps": ("train_steps", "Training steps.", None),
    "eval_every": ("eval_every", "Checkpoint every N steps.", None),
    "eval_batch_size": ("eval_batch_size", "Global batch of the evaluation.", None),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's.",
                None),
    "seed": ("seed", "Seed of the input pipeline.", None),
}
_FEW_LABELS = {
    key: (f"subset.{path}", text, choices) for key, (path, text, choices) in _DATA.items()}
_FEW_LABELS.update({
    "test_split": ("subset.test_split", "Split of the final report, read only then "
                   "(ImageNet: validation).", None),
    "label_fraction": ("subset.label_fraction", "Fraction of the labelled training "
                       "images, in (0, 1] (paper: 0.01 ... 1.0).", None),
    "subset_seed": ("subset.seed", "Seed of the label subset and validation split.", None),
    "validation_size": ("subset.validation_size", "Images held out of the training split "
                        "for model selection (supp. C.1: ~10k).", None),
    "validation_fraction": ("subset.validation_fraction", "> 0: hold out this fraction "
                            "instead of --validation_size.", None),
    "image_size": ("image_size", "Side of the classifier's input images.", None),
    "learning_rate": ("hparams.learning_rate", "SGD learning rate (used when "
                      "--sweep_size=1; supp. C.1 grid: 0.05, 0.1, 0.2).", None),
    "weight_decay": ("hparams.weight_decay", "SGD weight decay (--sweep_size=1).", None),
    "dropout": ("hparams.dropout", "Dropout before the last linear layer (--sweep_size=1).",
                None),
    "batch_per_replica": ("hparams.batch_per_replica", "Per-replica batch "
                          "(--sweep_size=1; supp. C.1: 16 or 32).", None),
    "sweep_size": ("sweep.size", "Sweep points: 1 = the hyper-parameters above, N > 1 = "
                   "N random points of the supp. C.1 grid, 0 = the whole grid.", None),
    "sweep_seed": ("sweep.seed", "Seed choosing the sweep points.", None),
    "momentum": ("momentum", "SGD momentum.", None),
    "eval_every": ("eval_every", "Validate and checkpoint every N steps.", None),
    "eval_batch_size": ("eval_batch_size", "Global batch of validation and test.", None),
    "seed": ("seed", "Seed of the input pipeline.", None),
})
EFFICIENT_OVERRIDES = {
    **_FEW_LABELS,
    "frozen_steps": ("frozen_steps", "Phase 1 steps per sweep point (frozen encoder).",
                     None),
    "finetune_steps": ("finetune_steps", "Phase 2 step budget (fine-tuning).", None),
    "finetune": ("finetune", "Run phase 2 (fine-tune encoder and classifier).", None),
    "encoder_learning_rate": ("encoder_learning_rate", "Adam learning rate of the encoder "
                              "in phase 2.", None),
    "patience": ("patience", "Phase 2 stops after N validations without improvement.",
                 None),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's.",
                None),
    "classifier_blocks": ("classifier.blocks", "Residual blocks of the classifier "
                          "(supp. C.2: 11).", None),
    "classifier_width": ("classifier.width", "Hidden maps of the classifier (4096).", None),
    "classifier_bottleneck": ("classifier.bottleneck", "Bottleneck maps (1024).", None),
}
SUPERVISED_OVERRIDES = {
    **_FEW_LABELS,
    "architecture": ("architecture", "ResNet from pixels (supp. C.1: resnet50_v2 ... "
                     "resnet200_v2).", tuple(sorted(resnet.SPECS))),
    "train_steps": ("train_steps", "Training steps per sweep point.", None),
}
DETECTION_OVERRIDES = {
    **_DATA,
    "split": ("data.split", "Training split (VOC 2007: trainval).", None),
    "test_split": ("test_split", "Split of the final report (VOC 2007: test).", None),
    "validation_split": ("validation_split", "Split validated every --eval_every steps "
                         "(mAP; best weights kept).", None),
    "validation_images": ("validation_images", "Validate on the first N images; 0 = all.",
                          None),
    "test_images": ("test_images", "Test on the first N images; 0 = all (synthetic: 300).",
                    None),
    "image_size": ("image_size", "Longer image side in px (Ren et al.: 600).", None),
    "color_drop_p": ("color_drop_p", "Probability of colour dropping in training "
                     "(ICLR 4.3).", None),
    "backbone": ("backbone", "'pretrained' (--model_dir) or 'random' (--architecture "
                 "from pixels, the baseline).", configs.DETECTION_BACKBONES),
    "architecture": ("architecture", "Encoder of --backbone=random.",
                     tuple(sorted(resnet.SPECS))),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's.",
                None),
    "batch_size": ("batch_size", "Global images per step over all replicas.", None),
    "learning_rate": ("learning_rate", "SGD learning rate of RPN and box head.", None),
    "encoder_learning_rate": ("encoder_learning_rate", "Adam learning rate of the "
                              "backbone in phase 2.", None),
    "momentum": ("momentum", "SGD momentum.", None),
    "clip_norm": ("clip_norm", "Global-norm clip of the summed gradient.", None),
    "frozen_steps": ("frozen_steps", "Phase 1 steps (backbone frozen); 0 skips it.", None),
    "finetune_steps": ("finetune_steps", "Phase 2 steps (end to end); 0 skips it.", None),
    "eval_every": ("eval_every", "Validate and checkpoint every N steps.", None),
    "eval_batch_size": ("eval_batch_size", "Images per validation / test batch.", None),
    "use_difficult": ("use_difficult", "Train on VOC 'difficult' objects too.", None),
    "head": ("detector.head", "Box head: 'residual' (res5-like stack) or 'fc'.",
             detection_config.HEADS),
    "roi_batch_per_image": ("detector.roi_batch_per_image", "RoIs sampled per image for "
                            "the box head (He et al. C4: 512).", None),
    "seed": ("seed", "Seed of the input pipeline.", None),
}
OVERRIDES = {"linear": LINEAR_OVERRIDES, "efficient": EFFICIENT_OVERRIDES,
             "supervised": SUPERVISED_OVERRIDES, "detection": DETECTION_OVERRIDES}


def _data_path(protocol: str) -> str:
  return "data" if protocol in ("linear", "detection") else "subset.data"


def field_default(protocol: str, path: str):
  """Value of a dotted field of the protocol's config class, e.g. "subset.seed"."""
  return common.field_default(path, CONFIG_CLASSES[protocol]())


# The flags of define_flags, beyond the overrides, that a binary may exclude;
# --preset, --dataset and the strategy flags are always defined.
_EXCLUDABLE = ("model_dir", "checkpoint_step", "output_dir", "stop_after_steps",
               "subset_file")


def _check_exclude(protocol: str, exclude: Sequence[str]) -> None:
  unknown = sorted(set(exclude) - set(OVERRIDES[protocol]) - set(_EXCLUDABLE))
  if unknown:
    raise ValueError(f"exclude={unknown}: not flags of the {protocol} protocol.")


def define_flags(protocol: str, flag_values=flags.FLAGS, exclude: Sequence[str] = ()
                 ) -> None:
  """The flags of launch/<protocol binary>.py, but those named in `exclude`.

  A binary that reuses the protocol for something else (launch/learning_dynamics.py)
  excludes the flags it sets itself or that do not apply, and defines its own.
  """
  _check_exclude(protocol, exclude)

  def want(name):
    return name not in exclude

  if protocol != "supervised":
    if want("model_dir"):
      saved = (" Or a SavedModel written by launch/export.py (whole-image encoder, no "
               "--checkpoint_step)." if protocol == "efficient" else "")
      if protocol == "detection":
        saved = (" Or a SavedModel written by launch/export.py (no --checkpoint_step). "
                 "Not with --backbone=random.")
      flags.DEFINE_string(
          "model_dir", None, "Pre-training directory (launch/pretrain.py --model_dir): "
          "its config.json and the Polyak-averaged weights of its checkpoint." + saved,
          flag_values=flag_values)
      if protocol != "detection":  # a random backbone needs none
        flags.mark_flag_as_required("model_dir", flag_values=flag_values)
    if want("checkpoint_step"):
      flags.DEFINE_integer(
          "checkpoint_step", None, "Pre-training step to evaluate; default the latest.",
          flag_values=flag_values)
  if want("output_dir"):
    flags.DEFINE_string(
        "output_dir", None, "Where checkpoints, config.json and results.json go. "
        "Rerunning the same command resumes.", flag_values=flag_values)
    flags.mark_flag_as_required("output_dir", flag_values=flag_values)
  common.define_strategy_flags(flag_values)
  flags.DEFINE_string(
      "preset", configs.DEFAULT_EVAL_PRESETS[protocol],
      f"Starting config, one of {sorted(configs.EVAL_PRESETS[protocol])}; the flags below "
      "override it.", flag_values=flag_values)
  flags.DEFINE_string(
      "dataset", None, "Labelled images: 'fashion_mnist', a TFDS name (e.g. imagenet2012), "
      "or an image folder with one sub-folder per class ('folder:/path'). Detection: "
      "'voc/2007' (TFDS), a VOCdevkit folder ('folder:/path/VOCdevkit') or 'synthetic'. "
      "Default: the preset's.", flag_values=flag_values)
  if want("stop_after_steps"):
    flags.DEFINE_integer(
        "stop_after_steps", None, "Stop after this many training steps in this "
        "invocation, checkpoint, and exit with status 75; rerun to continue "
        "(time-limited jobs).", flag_values=flag_values)
  if protocol not in ("linear", "detection") and want("subset_file"):
    flags.DEFINE_string(
        "subset_file", None, "A subset.json of an earlier run: reuse its labelled subset "
        "and validation split exactly.", flag_values=flag_values)
  for name, (path, help_text, choices) in OVERRIDES[protocol].items():
    if want(name):
      common.define_flag(name, field_default(protocol, path),
                         f"{help_text} Overrides the preset; the default shown is the "
                         "config field's.", choices, flag_values)


def config_from_flags(protocol: str, flag_values=flags.FLAGS,
                      exclude: Sequence[str] = ()):
  """The preset with the fields of every flag the user set replaced (ValueError if bad).

  `exclude`: as given to define_flags.
  """
  _check_exclude(protocol, exclude)
  config = configs.eval_preset(protocol, flag_values.preset)
  changes = {}
  for name, (path, _, _) in OVERRIDES[protocol].items():
    if name not in exclude and flag_values[name].present:
      changes[path] = flag_values[name].value
  if flag_values["dataset"].present:
    for key, value in common.dataset_override(flag_values.dataset).items():
      changes[key.replace("data.", _data_path(protocol) + ".", 1)] = value
  return configs.replace(config, **changes)


EXIT_INTERRUPTED = 75  # --stop_after_steps reached: rerun the same command to continue


def main_for(protocol: str, run, flag_values=flags.FLAGS):
  """The absl `main` of an evaluation binary.

  Builds the protocol's config and strategy from the flags, calls
  `run(config, strategy)` (a `cpc_tf.eval.<protocol>.train_*` call returning the
  results document) and prints its table. Bad input exits with one clear line;
  an interruption by --stop_after_steps exits with status EXIT_INTERRUPTED.
  """
  from cpc_tf import distribute
  from cpc_tf.data import DataError
  from cpc_tf.eval import loop, results

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
      config = config_from_flags(protocol, flag_values)
      common.check_strategy_flags(flag_values)
      strategy = distribute.make_strategy(flag_values.strategy, flag_values.tpu)
      doc = run(config, strategy)
    except (ValueError, FileNotFoundError, DataError) as e:
      sys.exit(f"Error: {e}")
    except loop.Interrupted as e:
      print(f"Interrupted: {e}. Rerun the same command to continue.", flush=True)
      sys.exit(EXIT_INTERRUPTED)
    print(results.format_table(doc["rows"]), flush=True)

  return main
