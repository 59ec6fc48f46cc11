"""absl flags shared by the evaluation binaries, and flags -> evaluation configs.

As in `flags.common`: a run starts from `--preset` (a function in
`cpc_tf.configs.EVAL_PRESETS[protocol]`) and every override flag replaces one
config field ONLY if the user set it. The defaults `--help` shows are those of
the preset on the command line (else the binary's default preset), read from
the preset function, so they are what the run would use. Every flag defined
here is a key flag of this module: a binary that adopts it lists them in its
own `--help`.
"""

from __future__ import annotations

from typing import Sequence

import sys

from absl import app
from absl import flags

from cpc_tf import configs, resnet
from cpc_tf.detection import config as detection_config
from cpc_tf.patches import PRESET_GRIDS
from flags import axes, common

CONFIG_CLASSES = {"linear": configs.LinearEvalConfig, "efficient": configs.EfficientConfig,
                  "supervised": configs.SupervisedConfig,
                  "detection": configs.DetectionConfig}

# flag -> (dotted config field, help, allowed values or None), per protocol.
_DATA = {
    "data_dir": ("data.data_dir", "TFDS data directory (TFDS datasets only).", None),
    "split": ("data.split", "Training split (the validation split is carved from it, "
              "unless an image folder has its own validation/).", None),
    "max_examples": ("data.max_examples", "Use only the first N examples of each split; "
                     "0 = all.", None),
    "test_path": ("data.test_path", "Image folders: a separate folder of class folders "
                  "to test on (instead of the folder's test/ or a carved share).", None),
    "test_fraction": ("data.test_fraction", "Image folders without test/ or --test_path: "
                      "share of each class held out as the test split (seeded by "
                      "--split_seed); 0 = no test split.", None),
    "split_seed": ("data.split_seed", "Image folders: seed of the carved test split.",
                   None),
}
# Image folders are tested on their held-out "test" split unless --test_split says
# otherwise (the ImageNet default, "validation", is often absent from a folder).
FOLDER_TEST_SPLIT = "test"
# --grid_<field> -> the pre-training flag (flags.axes) whose help it shares.
GRID_FLAGS = {"grid_image_size": "image_size", "grid_patch_size": "patch_size",
              "grid_stride": "stride"}
_GRID = {name: (name, axes.AXIS_FLAGS[axis][1] + " For the evaluation grid; 0 keeps "
                "--grid's.", None) for name, axis in GRID_FLAGS.items()}
LINEAR_OVERRIDES = {
    **_DATA,
    "test_split": ("test_split", "Split of the final report (ImageNet: validation; "
                   "image folders: test unless set, never train).", None),
    "grid": ("grid", "Patch grid: 'pretrain' (the model_dir's) or a preset grid "
             "(ICLR A.3: linear_iclr); --grid_image_size / --grid_patch_size / "
             "--grid_stride change one of its sizes.", ("pretrain", *sorted(PRESET_GRIDS))),
    **_GRID,
    "batch_size": ("batch_size", "Global batch over all replicas (supp. B: 512).", None),
    "learning_rate": ("learning_rate", "Adam learning rate (supp. B: 5e-4).", None),
    "train_steps": ("train_steps", "Training steps.", None),
    "eval_every": ("eval_every", "Checkpoint (and validate) every N steps.", None),
    "eval_batch_size": ("eval_batch_size", "Global batch of the evaluation.", None),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's.",
                None),
    "seed": ("seed", "Seed of the input pipeline and of the validation carve.", None),
    "validation_size": ("validation_size", "Training images held out (seeded, "
                        "class-stratified) to validate on; the best validated step is "
                        "tested. 0: none, as supp. B.", None),
    "match_test_patches": ("match_test_patches", "Encoders whose every training patch "
                           "had a v1 mark (arXiv v1 4.1: spatial jitter; colour dropping or "
                           "flips at p=1): validation and test patches get its deterministic "
                           "form (the jitter's zero frame around a centred crop; one kept "
                           "channel, the others mid-grey; a mirror). False: plain patches, a "
                           "train/test shift.",
                           None),
    "cache_features": ("cache_features", "Encode each image once and train the head on "
                       "the cached grid means, to convergence at the cost of one encoder "
                       "pass; only for encoders pre-trained without augmentation on whole-"
                       "image crops (else refused).", None),
    "train_epochs": ("train_epochs", "> 0: epochs of the labelled training images, at "
                     "most --train_steps.", None),
    "eval_every_epochs": ("eval_every_epochs", "> 0: validate every that many epochs, at "
                          "most every --eval_every steps.", None),
    "patience": ("patience", "With a validation carve: stop after N validations without "
                 "a gain (0: never).", None),
}
_FEW_LABELS = {
    key: (f"subset.{path}", text, choices) for key, (path, text, choices) in _DATA.items()}
_FEW_LABELS.update({
    "test_split": ("subset.test_split", "Split of the final report, read only then "
                   "(ImageNet: validation; image folders: test unless set, never train "
                   "or the validation folder).", None),
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
    "weight_decay": ("hparams.weight_decay", "SGD weight decay (--sweep_size=1; supp. "
                     "C.1 grid: 1e-5 ... 1e-2), applied as --weight_decay_mode says.", None),
    "weight_decay_mode": ("weight_decay_mode", "How supp. C.1's 'weight decay' is applied: "
                          "'l2' adds wd * sum(w^2) / 2 over the kernels to the loss "
                          "(gradient + wd * w, TF1's l2_regularizer, as TF1-era code of "
                          "the paper's time did); 'decoupled' is Keras' weight_decay "
                          "(w -= lr * wd * w), about 10x weaker with momentum 0.9. Norms "
                          "and biases never decay.", configs.WEIGHT_DECAY_MODES),
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
    "frozen_steps": ("frozen_steps", "Phase 1 steps per sweep point (frozen encoder); "
                     "with --frozen_epochs, the cap.", None),
    "finetune_steps": ("finetune_steps", "Phase 2 step budget (fine-tuning); with "
                       "--finetune_epochs, the cap.", None),
    "frozen_epochs": ("frozen_epochs", "> 0: phase 1 epochs of the labelled subset, at "
                      "most --frozen_steps.", None),
    "finetune_epochs": ("finetune_epochs", "> 0: phase 2 epochs of the labelled subset, "
                        "at most --finetune_steps.", None),
    "eval_every_epochs": ("eval_every_epochs", "> 0: validate every that many epochs, at "
                          "most every --eval_every steps.", None),
    "finetune": ("finetune", "Run phase 2 (fine-tune encoder and classifier).", None),
    "encoder_learning_rate": ("encoder_learning_rate", "Adam learning rate of the encoder "
                              "in phase 2.", None),
    "encoder_beta_1": ("encoder_beta_1", "Phase 2 encoder Adam beta1 (default: "
                       "pre-training's, supp. A: 0.8; supp. C.2 keeps each component's "
                       "optimizer).", None),
    "encoder_beta_2": ("encoder_beta_2", "Phase 2 encoder Adam beta2 (default: "
                       "pre-training's, supp. A: 0.999).", None),
    "encoder_epsilon": ("encoder_epsilon", "Phase 2 encoder Adam epsilon (default: "
                        "pre-training's, supp. A: 1e-8).", None),
    "patience": ("patience", "Each phase stops after N validations without improvement "
                 "(0: never).", None),
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
    "train_steps": ("train_steps", "Training steps per sweep point; with --train_epochs, "
                    "the cap.", None),
    "train_epochs": ("train_epochs", "> 0: epochs of the labelled subset per sweep point, "
                     "at most --train_steps.", None),
    "eval_every_epochs": ("eval_every_epochs", "> 0: validate every that many epochs, at "
                          "most every --eval_every steps.", None),
    "patience": ("patience", "Stop after N validations without improvement (0: never).",
                 None),
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
    "backbone": ("backbone", "'pretrained' (--model_dir: CPC, or a supervised baseline's "
                 "output_dir) or 'random' (--architecture from pixels, the baseline).",
                 configs.DETECTION_BACKBONES),
    "architecture": ("architecture", "Encoder of --backbone=random.",
                     tuple(sorted(resnet.SPECS))),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's.",
                None),
    "batch_size": ("batch_size", "Global images per step over all replicas.", None),
    "learning_rate": ("learning_rate", "SGD learning rate of RPN and box head.", None),
    "encoder_learning_rate": ("encoder_learning_rate", "Adam learning rate of the "
                              "backbone in phase 2.", None),
    "backbone_batch_stats": ("backbone_batch_stats", "Phase 2: normalise a batch-norm "
                             "backbone (a supervised baseline's) with batch statistics "
                             "and update them; default keeps them fixed (He et al. "
                             "2016). No effect on layer norm (CPC).", None),
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


def field_default(protocol: str, path: str, config=None):
  """Value of a dotted field of `config` (default: the protocol's config class)."""
  return common.field_default(path, CONFIG_CLASSES[protocol]() if config is None
                              else config)


def argv_preset(protocol: str, argv: Sequence[str] | None = None) -> str:
  """The --preset given in `argv` (sys.argv) if it names a preset, else the default.

  Read before parsing so that --help can show the chosen preset's defaults.
  """
  argv = sys.argv[1:] if argv is None else argv
  name = configs.DEFAULT_EVAL_PRESETS[protocol]
  for i, arg in enumerate(argv):
    if arg.startswith("--preset="):
      name = arg[len("--preset="):]
    elif arg == "--preset" and i + 1 < len(argv):
      name = argv[i + 1]
  return name if name in configs.EVAL_PRESETS[protocol] else (
      configs.DEFAULT_EVAL_PRESETS[protocol])


# The flags of define_flags, beyond the overrides, that a binary may exclude;
# --preset, --dataset and the strategy flags are always defined.
_EXCLUDABLE = ("model_dir", "checkpoint_step", "output_dir", "stop_after_steps",
               "subset_file")


def _check_exclude(protocol: str, exclude: Sequence[str]) -> None:
  unknown = sorted(set(exclude) - set(OVERRIDES[protocol]) - set(_EXCLUDABLE))
  if unknown:
    raise ValueError(f"exclude={unknown}: not flags of the {protocol} protocol.")


def define_flags(protocol: str, flag_values=flags.FLAGS, exclude: Sequence[str] = (),
                 argv: Sequence[str] | None = None) -> None:
  """The flags of launch/<protocol binary>.py, but those named in `exclude`.

  Defaults are those of the --preset in `argv` (default sys.argv; see argv_preset).

  A binary that reuses the protocol for something else (launch/learning_dynamics.py)
  excludes the flags it sets itself or that do not apply, and defines its own.
  """
  _check_exclude(protocol, exclude)
  before = set(flag_values)

  def want(name):
    return name not in exclude

  if protocol != "supervised":
    if want("model_dir"):
      saved = (" Or a SavedModel written by launch/export.py (whole-image encoder, no "
               "--checkpoint_step)." if protocol == "efficient" else "")
      if protocol == "detection":
        saved = (" Or a SavedModel written by launch/export.py (no --checkpoint_step). "
                 "Or the --output_dir of a finished launch/supervised_baseline.py run "
                 "(the encoder of its best sweep point: the supervised-transfer "
                 "baseline; trained with a stride-16 architecture such as "
                 "detection_small; no --checkpoint_step). Not with --backbone=random.")
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
  preset = argv_preset(protocol, argv)
  config = configs.eval_preset(protocol, preset)
  for name, (path, help_text, choices) in OVERRIDES[protocol].items():
    if want(name):
      common.define_flag(name, field_default(protocol, path, config),
                         f"{help_text} Overrides the preset; the default shown is "
                         f"--preset={preset}'s.", choices, flag_values)
  for name in sorted(set(flag_values) - before):
    flags.declare_key_flag(name, flag_values)  # shown by --help of an adopting binary


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
  test_split = "test_split" if protocol == "linear" else "subset.test_split"
  source = changes.get(f"{_data_path(protocol)}.source",
                       common.field_default(f"{_data_path(protocol)}.source", config))
  if (source == "folder" and "test_split" not in exclude
      and not flag_values["test_split"].present):
    changes[test_split] = FOLDER_TEST_SPLIT
  return configs.replace(config, **changes)


EXIT_INTERRUPTED = 75  # --stop_after_steps reached: rerun the same command to continue


def main_for(protocol: str, run, flag_values=flags.FLAGS):
  """The absl `main` of an evaluation binary.

  Builds the protocol's config and strategy from the flags, calls
  `run(config, strategy)` (a `cpc_tf.eval.<protocol>.train_*` call returning the
  results document) and prints its table. Bad input exits with one clear line;
  an interruption by --stop_after_steps exits with status EXIT_INTERRUPTED.
  """
  from cpc_tf import distribute, records, stop
  from cpc_tf.data import DataError
  from cpc_tf.eval import results

  def main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
      records.check_writable(flag_values.output_dir, "--output_dir")
      config = config_from_flags(protocol, flag_values)
      common.check_strategy_flags(flag_values)
      strategy = distribute.make_strategy(flag_values.strategy, flag_values.tpu)
      doc = run(config, strategy)
    except (ValueError, FileNotFoundError, DataError, records.WriteError) as e:
      sys.exit(f"Error: {e}")
    except stop.Stopped as e:  # SIGTERM / Ctrl-C: checkpoint saved, 128 + signal
      print(e, flush=True)
      sys.exit(e.status)
    except KeyboardInterrupt:  # Ctrl-C outside a training phase: nothing new to save
      print("Error: interrupted (SIGINT) outside a training phase; the checkpoints "
            "saved so far are kept. Rerun the same command to continue.",
            file=sys.stderr, flush=True)
      sys.exit(130)
    except stop.Interrupted as e:
      print(e, flush=True)
      sys.exit(EXIT_INTERRUPTED)
    print(results.format_table(doc["rows"]), flush=True)

  return main
