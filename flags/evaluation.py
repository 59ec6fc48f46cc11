"""absl flags shared by the evaluation binaries, and flags -> evaluation configs.

As in `flags.common`: a run starts from `--preset` (a function in
`cpc_tf.configs.PRESETS[protocol]`), every short flag of ALIASES[protocol]
replaces one config field ONLY if the user set it, and --config.PATH=VALUE then
sets any field (flags/config_flags.py). The defaults `--help` shows are those of
the preset on the command line (else the binary's default preset), read from
the preset function, so they are what the run would use. Every flag defined
here is a key flag of this module: a binary that adopts it lists them in its
own `--help`.
"""

from __future__ import annotations

from typing import Sequence


from absl import flags

from cpc_tf import configs, records
from flags import axes, common, config_flags

# flag -> (dotted config field, help), per protocol: flags/config_flags.py alias tables.
_DATA = {
    "data_dir": ("data.data_dir", "TFDS data directory (TFDS datasets only)."),
    "split": ("data.split", "Training split (the validation split is carved from it, "
              "unless an image folder has its own validation/)."),
    "max_examples": ("data.max_examples", "Use only the first N examples of each split; "
                     "0 = all."),
    "test_path": ("data.test_path", "Image folders: a separate folder of class folders "
                  "to test on (instead of the folder's test/ or a carved share)."),
    "test_fraction": ("data.test_fraction", "Image folders without test/ or --test_path: "
                      "share of each class held out as the test split (seeded by "
                      "--split_seed); 0 = no test split."),
    "split_seed": ("data.split_seed", "Image folders: seed of the carved test split."),
}
# Image folders are tested on their held-out "test" split unless --test_split says
# otherwise (the ImageNet default, "validation", is often absent from a folder).
FOLDER_TEST_SPLIT = "test"
# --grid_<field> -> the pre-training flag (flags.axes) whose help it shares.
GRID_FLAGS = {"grid_image_size": "image_size", "grid_patch_size": "patch_size",
              "grid_stride": "stride"}
_GRID = {name: (name, axes.AXIS_ALIASES[axis][1] + " For the evaluation grid; 0 keeps "
                "--grid's.") for name, axis in GRID_FLAGS.items()}
LINEAR_ALIASES = {
    **_DATA,
    "test_split": ("test_split", "Split of the final report (ImageNet: validation; "
                   "image folders: test unless set, never train)."),
    "grid": ("grid", "Patch grid: 'pretrain' (the model_dir's) or a preset grid "
             "(ICLR A.3: linear_iclr); --grid_image_size / --grid_patch_size / "
             "--grid_stride change one of its sizes."),
    **_GRID,
    "batch_size": ("batch_size", "Global batch over all replicas (supp. B: 512)."),
    "learning_rate": ("learning_rate", "Adam learning rate (supp. B: 5e-4)."),
    "train_steps": ("train_steps", "Training steps."),
    "eval_every": ("eval_every", "Checkpoint (and validate) every N steps."),
    "eval_batch_size": ("eval_batch_size", "Global batch of the evaluation."),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's."),
    "seed": ("seed", "Seed of the input pipeline and of the validation carve."),
    "validation_size": ("validation_size", "Training images held out (seeded, "
                        "class-stratified) to validate on; the best validated step is "
                        "tested. 0: none, as supp. B."),
    "match_test_patches": ("match_test_patches", "Encoders whose every training patch "
                           "had a v1 mark (arXiv v1 4.1: spatial jitter; colour dropping or "
                           "flips at p=1): validation and test patches get its deterministic "
                           "form (the jitter's zero frame around a centred crop; one kept "
                           "channel, the others mid-grey; a mirror). False: plain patches, a "
                           "train/test shift."),
    "cache_features": ("cache_features", "Encode each image once and train the head on "
                       "the cached grid means, to convergence at the cost of one encoder "
                       "pass; only for encoders pre-trained without augmentation on whole-"
                       "image crops (else refused)."),
    "train_epochs": ("train_epochs", "> 0: epochs of the labelled training images, at "
                     "most --train_steps."),
    "eval_every_epochs": ("eval_every_epochs", "> 0: validate every that many epochs, at "
                          "most every --eval_every steps."),
    "patience": ("patience", "With a validation carve: stop after N validations without "
                 "a gain (0: never)."),
}
_FEW_LABELS = {key: (f"subset.{path}", text) for key, (path, text) in _DATA.items()}
_FEW_LABELS.update({
    "test_split": ("subset.test_split", "Split of the final report, read only then "
                   "(ImageNet: validation; image folders: test unless set, never train "
                   "or the validation folder)."),
    "label_fraction": ("subset.label_fraction", "Fraction of the labelled training "
                       "images, in (0, 1] (paper: 0.01 ... 1.0)."),
    "subset_seed": ("subset.seed", "Seed of the label subset and validation split."),
    "validation_size": ("subset.validation_size", "Images held out of the training split "
                        "for model selection (supp. C.1: ~10k)."),
    "validation_fraction": ("subset.validation_fraction", "> 0: hold out this fraction "
                            "instead of --validation_size."),
    "image_size": ("image_size", "Side of the classifier's input images."),
    "learning_rate": ("hparams.learning_rate", "SGD learning rate (used when "
                      "--sweep_size=1; supp. C.1 grid: 0.05, 0.1, 0.2)."),
    "weight_decay": ("hparams.weight_decay", "SGD weight decay (--sweep_size=1; supp. "
                     "C.1 grid: 1e-5 ... 1e-2), applied as --weight_decay_mode says."),
    "weight_decay_mode": ("weight_decay_mode", "How supp. C.1's 'weight decay' is applied: "
                          "'l2' adds wd * sum(w^2) / 2 over the kernels to the loss "
                          "(gradient + wd * w, TF1's l2_regularizer, as TF1-era code of "
                          "the paper's time did); 'decoupled' is Keras' weight_decay "
                          "(w -= lr * wd * w), about 10x weaker with momentum 0.9. Norms "
                          "and biases never decay."),
    "dropout": ("hparams.dropout", "Dropout before the last linear layer (--sweep_size=1)."),
    "batch_per_replica": ("hparams.batch_per_replica", "Per-replica batch "
                          "(--sweep_size=1; supp. C.1: 16 or 32)."),
    "sweep_size": ("sweep.size", "Sweep points: 1 = the hyper-parameters above, N > 1 = "
                   "N random points of the supp. C.1 grid, 0 = the whole grid."),
    "sweep_seed": ("sweep.seed", "Seed choosing the sweep points."),
    "momentum": ("momentum", "SGD momentum."),
    "eval_every": ("eval_every", "Validate and checkpoint every N steps."),
    "eval_batch_size": ("eval_batch_size", "Global batch of validation and test."),
    "seed": ("seed", "Seed of the input pipeline."),
})
EFFICIENT_ALIASES = {
    **_FEW_LABELS,
    "frozen_steps": ("frozen_steps", "Phase 1 steps per sweep point (frozen encoder); "
                     "with --frozen_epochs, the cap."),
    "finetune_steps": ("finetune_steps", "Phase 2 step budget (fine-tuning); with "
                       "--finetune_epochs, the cap."),
    "frozen_epochs": ("frozen_epochs", "> 0: phase 1 epochs of the labelled subset, at "
                      "most --frozen_steps."),
    "finetune_epochs": ("finetune_epochs", "> 0: phase 2 epochs of the labelled subset, "
                        "at most --finetune_steps."),
    "eval_every_epochs": ("eval_every_epochs", "> 0: validate every that many epochs, at "
                          "most every --eval_every steps."),
    "finetune": ("finetune", "Run phase 2 (fine-tune encoder and classifier)."),
    "encoder_learning_rate": ("encoder_learning_rate", "Adam learning rate of the encoder "
                              "in phase 2."),
    "encoder_beta_1": ("encoder_beta_1", "Phase 2 encoder Adam beta1 (default: "
                       "pre-training's, supp. A: 0.8; supp. C.2 keeps each component's "
                       "optimizer)."),
    "encoder_beta_2": ("encoder_beta_2", "Phase 2 encoder Adam beta2 (default: "
                       "pre-training's, supp. A: 0.999)."),
    "encoder_epsilon": ("encoder_epsilon", "Phase 2 encoder Adam epsilon (default: "
                        "pre-training's, supp. A: 1e-8)."),
    "patience": ("patience", "Each phase stops after N validations without improvement "
                 "(0: never)."),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's."),
    "classifier_blocks": ("classifier.blocks", "Residual blocks of the classifier "
                          "(supp. C.2: 11)."),
    "classifier_width": ("classifier.width", "Hidden maps of the classifier (4096)."),
    "classifier_bottleneck": ("classifier.bottleneck", "Bottleneck maps (1024)."),
}
SUPERVISED_ALIASES = {
    **_FEW_LABELS,
    "architecture": ("architecture", "ResNet from pixels (supp. C.1: resnet50_v2 ... "
                     "resnet200_v2)."),
    "train_steps": ("train_steps", "Training steps per sweep point; with --train_epochs, "
                    "the cap."),
    "train_epochs": ("train_epochs", "> 0: epochs of the labelled subset per sweep point, "
                     "at most --train_steps."),
    "eval_every_epochs": ("eval_every_epochs", "> 0: validate every that many epochs, at "
                          "most every --eval_every steps."),
    "patience": ("patience", "Stop after N validations without improvement (0: never)."),
}
DETECTION_ALIASES = {
    **_DATA,
    "split": ("data.split", "Training split (VOC 2007: trainval)."),
    "test_split": ("test_split", "Split of the final report (VOC 2007: test)."),
    "validation_split": ("validation_split", "Split validated every --eval_every steps "
                         "(mAP; best weights kept)."),
    "validation_images": ("validation_images", "Validate on the first N images; 0 = all."),
    "test_images": ("test_images", "Test on the first N images; 0 = all (synthetic: 300)."),
    "image_size": ("image_size", "Longer image side in px (Ren et al.: 600)."),
    "color_drop_p": ("color_drop_p", "Probability of colour dropping in training "
                     "(ICLR 4.3)."),
    "backbone": ("backbone", "'pretrained' (--model_dir: CPC, or a supervised baseline's "
                 "output_dir) or 'random' (--architecture from pixels, the baseline)."),
    "architecture": ("architecture", "Encoder of --backbone=random."),
    "encoder": ("encoder", "Expected encoder architecture; empty accepts the model_dir's."),
    "batch_size": ("batch_size", "Global images per step over all replicas."),
    "learning_rate": ("learning_rate", "SGD learning rate of RPN and box head."),
    "encoder_learning_rate": ("encoder_learning_rate", "Adam learning rate of the "
                              "backbone in phase 2."),
    "backbone_batch_stats": ("backbone_batch_stats", "Phase 2: normalise a batch-norm "
                             "backbone (a supervised baseline's) with batch statistics "
                             "and update them; default keeps them fixed (He et al. "
                             "2016). No effect on layer norm (CPC)."),
    "momentum": ("momentum", "SGD momentum."),
    "clip_norm": ("clip_norm", "Global-norm clip of the summed gradient."),
    "frozen_steps": ("frozen_steps", "Phase 1 steps (backbone frozen); 0 skips it."),
    "finetune_steps": ("finetune_steps", "Phase 2 steps (end to end); 0 skips it."),
    "eval_every": ("eval_every", "Validate and checkpoint every N steps."),
    "eval_batch_size": ("eval_batch_size", "Images per validation / test batch."),
    "use_difficult": ("use_difficult", "Train on VOC 'difficult' objects too."),
    "head": ("detector.head", "Box head: 'residual' (res5-like stack) or 'fc'."),
    "roi_batch_per_image": ("detector.roi_batch_per_image", "RoIs sampled per image for "
                            "the box head (He et al. C4: 512)."),
    "seed": ("seed", "Seed of the input pipeline."),
}
ALIASES = {"linear": LINEAR_ALIASES, "efficient": EFFICIENT_ALIASES,
           "supervised": SUPERVISED_ALIASES, "detection": DETECTION_ALIASES}


def _data_path(protocol: str) -> str:
  return "data" if protocol in ("linear", "detection") else "subset.data"


# The flags of define_flags, beyond the aliases, that a binary may exclude;
# --preset, --dataset and the strategy flags are always defined. A binary that
# excludes --config and --config_help defines them for its own config type.
_EXCLUDABLE = ("model_dir", "checkpoint_step", "output_dir", "stop_after_steps",
               "subset_file", config_flags.CONFIG_FLAG, config_flags.HELP_FLAG)


def _check_exclude(protocol: str, exclude: Sequence[str]) -> None:
  unknown = sorted(set(exclude) - set(ALIASES[protocol]) - set(_EXCLUDABLE))
  if unknown:
    raise ValueError(f"exclude={unknown}: not flags of the {protocol} protocol.")


def define_flags(protocol: str, flag_values=flags.FLAGS, exclude: Sequence[str] = (),
                 argv: Sequence[str] | None = None) -> None:
  """The flags of launch/<protocol binary>.py, but those named in `exclude`.

  Defaults are those of the --preset in `argv` (default sys.argv; see common.argv_preset).

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
      "preset", configs.DEFAULTS[protocol],
      f"Starting config, one of {sorted(configs.PRESETS[protocol])}; the flags below "
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
  preset = common.argv_preset(protocol, argv)
  config = configs.get(protocol, preset)
  config_flags.define_aliases(ALIASES[protocol], config, flag_values, preset, exclude)
  if want(config_flags.CONFIG_FLAG):
    config_flags.define_config_flags(config, flag_values, preset)
  for name in sorted(set(flag_values) - before):
    flags.declare_key_flag(name, flag_values)  # shown by --help of an adopting binary


def flag_changes(protocol: str, config, flag_values=flags.FLAGS,
                 exclude: Sequence[str] = (), given: Sequence[str] = ()) -> dict:
  """{dotted field of `config`: value} of the aliases, --dataset and the folder rule.

  `given`: the paths --config sets, which the folder rule (an image folder tests
  on its "test" split) leaves alone.
  """
  changes = config_flags.alias_changes(ALIASES[protocol], type(config), flag_values,
                                       exclude)
  if flag_values["dataset"].present:
    for key, value in common.dataset_override(flag_values.dataset).items():
      changes[key.replace("data.", _data_path(protocol) + ".", 1)] = value
  test_split = "subset.test_split" if protocol in ("efficient", "supervised") else "test_split"
  source_path = f"{_data_path(protocol)}.source"
  source = changes.get(source_path, config_flags.value_at(config, source_path))
  if (source == "folder" and "test_split" not in exclude
      and not flag_values["test_split"].present and test_split not in given):
    changes[test_split] = FOLDER_TEST_SPLIT
  return changes


def config_from_flags(protocol: str, flag_values=flags.FLAGS,
                      exclude: Sequence[str] = ()):
  """The preset with the fields of every flag the user set replaced, then --config's.

  ValueError if bad. `exclude`: as given to define_flags.
  """
  _check_exclude(protocol, exclude)
  config = configs.get(protocol, flag_values.preset)
  changes = flag_changes(protocol, config, flag_values, exclude,
                         config_flags.given_paths(flag_values))
  return config_flags.apply(config, changes, flag_values, ALIASES[protocol])


def build_config(protocol: str, flag_values=flags.FLAGS):
  """The protocol's config from the flags, once --output_dir and the strategy flags pass.

  The `build_config` of launch/entry.main for an evaluation binary.
  """
  records.check_writable(flag_values.output_dir, "--output_dir")
  config = config_from_flags(protocol, flag_values)
  common.check_strategy_flags(flag_values)
  return config


def print_table(doc: dict) -> None:
  """Prints the rows of a results document (what an evaluation binary ends with)."""
  from cpc_tf.eval import results
  print(results.format_table(doc["rows"]), flush=True)
