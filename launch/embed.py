r"""Embeds every image of a folder or split: one pooled vector per image, to NPZ and CSV.

Command (58 s on this 2-core machine, most of it the t-SNE of --map; after
`python -m launch.pretrain --preset=tiny --model_dir=runs/tiny --train_steps=50`;
installed: `cpc-embed` with the same flags):
  python -m launch.embed --model_dir=runs/tiny --dataset=fashion_mnist --split=test \
    --max_examples=2000 --output_dir=runs/tiny_embeddings --map
Your own images: --dataset=folder:/data/scans (or --dataset=/data/scans).

--model_dir is a pre-training run (its Polyak-averaged weights, --checkpoint_step
or the latest) or an exported SavedModel (launch/export.py). --dataset is an
image folder ('folder:/path' or a path: one sub-folder per class, or flat for
no labels; every image by default, --split/--test_fraction select a split as
the evaluation binaries do), 'fashion_mnist' or a TFDS name (--split, --data_dir).
The embedding of an image is cpc_tf/embed.py's: the centre crop's patch grid,
each patch's pooled vector, their mean [D].

Prints (the command above):
  Embedding the images of fashion_mnist split test with /abs/path/runs/tiny (32 px crops)
    embedded 2000/2000 images (1091.3 images/s)
  Wrote 2000 embeddings of dimension 32 to runs/tiny_embeddings/embeddings.npz and .csv
  Wrote the t-SNE map of 2000 images to runs/tiny_embeddings/embedding_map.png
(a progress line every 5 s and at the end; the map line only with --map).
Writes embeddings.npz (embeddings [N, D], names, labels, class_names), embeddings.csv
(name,label,class,d0..) and with --map embedding_map.png (cpc_tf/eval/embedding_map.py).
Rerunning writes the same files; a file it did not write is refused (--overwrite).
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from cpc_tf import embed, records
from cpc_tf.configs import DataConfig
from cpc_tf.eval import embedding_map
from flags import common
from launch import entry

common.define_model_dir(help_text="Pre-training directory (launch/pretrain.py "
                        "--model_dir) or an exported SavedModel (launch/export.py).")
flags.DEFINE_integer("checkpoint_step", None, "Pre-training step; default the latest.")
flags.DEFINE_string("dataset", None, "Images to embed: an image folder as 'folder:/path' "
                    "or a path (one sub-folder per class, or flat: no labels), "
                    "'fashion_mnist', or a TFDS name.")
flags.mark_flag_as_required("dataset")
flags.DEFINE_string("output_dir", None, "Where to write embeddings.npz, embeddings.csv "
                    "and (--map) embedding_map.png.")
flags.mark_flag_as_required("output_dir")
flags.DEFINE_string("split", DataConfig().split, "Split to embed (a folder's 'train' is "
                    "all of it unless it has split folders or --test_fraction).")
flags.DEFINE_string("data_dir", DataConfig().data_dir, "TFDS data directory.")
flags.DEFINE_integer("max_examples", DataConfig().max_examples,
                     "Only the first N examples; 0 = all.")
flags.DEFINE_string("test_path", DataConfig().test_path, "Image folders: a separate "
                    "folder of class folders that is their 'test' split.")
flags.DEFINE_float("test_fraction", 0.0, "Image folders without test/ or --test_path: "
                   "share of each class held out as the 'test' split, as the evaluation "
                   "binaries do (their default: 0.1); 0 = embed every image.")
flags.DEFINE_integer("split_seed", DataConfig().split_seed,
                     "Image folders: seed of the carved test split.")
flags.DEFINE_integer("batch_size", 64, "Images per forward pass.")
flags.DEFINE_bool("overwrite", False, "Replace embeddings.npz / .csv / embedding_map.png "
                  "in --output_dir even when this binary did not write them.")
flags.DEFINE_bool("map", False, "Also write embedding_map.png: the 2-D map of the "
                  "embeddings coloured by class (UMAP, else t-SNE, else PCA).")
flags.DEFINE_integer("map_points", embedding_map.MAX_POINTS,
                     "At most this many images on the map (a seeded sample).")
flags.adopt_module_key_flags(common)
FLAGS = flags.FLAGS


def build_config() -> DataConfig:
  """The images to embed, once the outputs may be written."""
  records.check_writable(FLAGS.output_dir, "--output_dir")
  if FLAGS.map_points < 3:
    raise ValueError(f"--map_points={FLAGS.map_points}: need at least 3.")
  embed.check_outputs(FLAGS.output_dir, overwrite=FLAGS.overwrite, with_map=FLAGS.map)
  source = {k.removeprefix("data."): v
            for k, v in common.dataset_override(FLAGS.dataset).items()}
  return DataConfig(split=FLAGS.split, data_dir=FLAGS.data_dir,
                    max_examples=FLAGS.max_examples, test_path=FLAGS.test_path,
                    test_fraction=FLAGS.test_fraction, split_seed=FLAGS.split_seed,
                    **source)


def run(data: DataConfig) -> None:
  embedder = embed.load(FLAGS.model_dir, step=FLAGS.checkpoint_step)
  where = data.path if data.source == "folder" else data.source
  print(f"Embedding the images of {where} split {data.split} with {embedder.source} "
        f"({embedder.grid.image_size} px crops)", flush=True)
  result = embed.embed_data(data, embedder, FLAGS.output_dir, batch_size=FLAGS.batch_size,
                            overwrite=FLAGS.overwrite, verbose=True)
  paths = embed.output_paths(FLAGS.output_dir, with_map=FLAGS.map)
  n, d = result.embeddings.shape
  print(f"Wrote {n} embeddings of dimension {d} to {paths['npz']} and .csv", flush=True)
  if FLAGS.map:
    name = os.path.basename(os.path.normpath(FLAGS.model_dir))
    how = embedding_map.write_map(paths["map"], {name: (result.embeddings, result.labels)},
                                  result.class_names, max_points=FLAGS.map_points)
    print(f"Wrote the {embedding_map.TITLES[how]} map of {min(n, FLAGS.map_points)} "
          f"images to {paths['map']}", flush=True)


main = entry.main(build_config, run)


if __name__ == "__main__":
  app.run(main)
