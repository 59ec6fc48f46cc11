r"""Extracts a frozen encoder's features once, to sharded TFRecords (arXiv v1 7.1).

Command (seconds on 2 CPU cores, after
`python -m launch.pretrain --preset=tiny --model_dir=runs/tiny`):
  python -m launch.extract_features --model_dir=runs/tiny --dataset=fashion_mnist \
    --split=train --max_examples=1000 --image_size=32 --output_dir=runs/tiny_features

--protocol=efficient (default): whole --image_size images, centre crop ->
the encoder's last stack grid [h, w, D] (the input of the supp. C.2 ResNet
classifier). --protocol=linear: the centre crop's patch grid (--grid) -> one
pooled vector per patch [Gh, Gw, D] (the input of the supp. B linear head).
The Polyak-averaged weights of --checkpoint_step (default the latest) are used.

The cache holds evaluation-style inputs only: a classifier trained from it
sees no random crops and no per-step augmentation (see cpc_tf/eval/features.py).

Image folders (--dataset=folder:...): --split=train is the folder minus its
test split, --split=test its test/ folder, --test_path or the carved share,
--split=validation its validation/ folder; every split's ids are written to
<output_dir>/splits.json.

Prints the encoder, the split and the feature name, a progress line per
batch, then "Wrote N examples of [shape] float32 features in S shards to
<output_dir>". Writes features-*.tfrecord and features.json (shape, count,
shards, source) into --output_dir; rerunning overwrites it.
"""

from __future__ import annotations

import dataclasses

from absl import app
from absl import flags

from cpc_tf import records
from cpc_tf.eval import encoders, features, held_out, linear
from cpc_tf.configs import DataConfig, EfficientConfig
from cpc_tf.patches import PRESET_GRIDS
from flags import common, evaluation
from launch import entry

common.define_model_dir(help_text="Pre-training directory (launch/pretrain.py "
                        "--model_dir) whose encoder is used.")
flags.DEFINE_integer("checkpoint_step", None, "Pre-training step; default the latest.")
flags.DEFINE_string("output_dir", None, "Cache directory (features-*.tfrecord, "
                    "features.json).")
flags.mark_flag_as_required("output_dir")
flags.DEFINE_enum("protocol", "efficient", ("efficient", "linear"),
                  "Which head's input to cache: efficient (last stack grid of whole "
                  "images, supp. C.2) or linear (pooled vector per patch, supp. B).")
flags.DEFINE_string("dataset", DataConfig().source, "Labelled images: 'fashion_mnist', "
                    "a TFDS name, or 'folder:/path' (one sub-folder per class).")
flags.DEFINE_string("split", DataConfig().split, "Split to extract.")
flags.DEFINE_string("data_dir", DataConfig().data_dir, "TFDS data directory.")
flags.DEFINE_integer("max_examples", DataConfig().max_examples,
                     "Only the first N examples; 0 = all.")
flags.DEFINE_string("test_path", DataConfig().test_path, "Image folders: a separate "
                    "folder of class folders that is their 'test' split.")
flags.DEFINE_float("test_fraction", DataConfig().test_fraction, "Image folders without "
                   "test/ or --test_path: share of each class held out as the 'test' "
                   "split (never in 'train'); 0 = none.")
flags.DEFINE_integer("split_seed", DataConfig().split_seed,
                     "Image folders: seed of the carved test split.")
flags.DEFINE_integer("image_size", EfficientConfig().image_size,
                     "Image side for --protocol=efficient.")
flags.DEFINE_enum("grid", "pretrain", ("pretrain", *sorted(PRESET_GRIDS)),
                  "Patch grid for --protocol=linear: the model_dir's or a preset grid.")
for _name in evaluation.GRID_FLAGS:
  flags.DEFINE_integer(_name, 0, evaluation.ALIASES["linear"][_name][1] +
                       " --protocol=linear only.")
flags.DEFINE_integer("batch_size", EfficientConfig().eval_batch_size,
                     "Images per forward pass.")
flags.DEFINE_integer("num_shards", features.NUM_SHARDS, "TFRecord files to write.")
flags.adopt_module_key_flags(common)
FLAGS = flags.FLAGS


def build_config() -> DataConfig:
  """The images to encode, once the flags agree and the cache may be written."""
  records.check_writable(FLAGS.output_dir, "--output_dir")
  source = {k.removeprefix("data."): v
            for k, v in common.dataset_override(FLAGS.dataset).items()}
  data = DataConfig(split=FLAGS.split, data_dir=FLAGS.data_dir,
                    max_examples=FLAGS.max_examples, test_path=FLAGS.test_path,
                    test_fraction=FLAGS.test_fraction, split_seed=FLAGS.split_seed,
                    **source)
  if FLAGS.protocol != "linear" and any(FLAGS[n].present for n in evaluation.GRID_FLAGS):
    raise ValueError("--grid_image_size / --grid_patch_size / --grid_stride apply to "
                     "--protocol=linear only (efficient uses --image_size).")
  return data


def run(data: DataConfig) -> None:
  sizes = [FLAGS[n].value for n in evaluation.GRID_FLAGS]
  encoder = encoders.load_encoder(FLAGS.model_dir, FLAGS.checkpoint_step)
  grid = None
  if FLAGS.protocol == "linear":
    grid = linear.eval_grid(encoder.pretrain, FLAGS.grid, *sizes)
  # An image folder's split ids (train minus the carved test share, ...) are
  # recorded beside the cache, as the evaluation binaries do.
  held_out.record(dataclasses.replace(data, split="train"), FLAGS.output_dir)
  model = features.extractor(encoder.model, grid)
  mode = "linear_eval" if grid is not None else "efficient_eval"
  print(f"Extracting {model.feature!r} of {encoder.source} on {data.source} "
        f"split {data.split} ({mode})", flush=True)
  info = features.extract(
      model, data, FLAGS.output_dir, mode=mode, batch_size=FLAGS.batch_size,
      image_size=FLAGS.image_size, grid=grid, num_shards=FLAGS.num_shards,
      source={"model_dir": FLAGS.model_dir, "encoder": encoder.source,
              "checkpoint_step": FLAGS.checkpoint_step}, verbose=True)
  print(f"Wrote {info.num_examples} examples of {list(info.shape)} float32 features in "
        f"{len(info.shards)} shards to {FLAGS.output_dir}", flush=True)


main = entry.main(build_config, run)


if __name__ == "__main__":
  app.run(main)
