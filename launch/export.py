r"""Exports the Polyak-averaged encoder of a pre-training run as a SavedModel.

Command:
  python -m launch.export --model_dir=runs/fashion_mnist_small \
    --export_dir=runs/fashion_mnist_small/export

Prints the export directory and the two signatures with their input and output
shapes (see cpc_tf/export.py: `patched` for images at the pre-training
image_size, `whole_image` for any size; float32 RGB in [0, 1]).
"""

from __future__ import annotations

from absl import app
from absl import flags

from cpc_tf import export, records
from cpc_tf.eval import encoders
from flags import common
from launch import entry

common.define_model_dir(help_text="Pre-training model_dir holding config.json and "
                        "checkpoints.")
flags.DEFINE_string("export_dir", None, "Where to write the SavedModel.")
flags.DEFINE_integer("checkpoint_step", None, "Pre-training step to export; default the "
                     "latest.")
flags.mark_flag_as_required("export_dir")
flags.adopt_module_key_flags(common)
FLAGS = flags.FLAGS


def build_config() -> str:
  """The export directory, once it may be written."""
  records.check_writable(FLAGS.export_dir, "--export_dir")
  return FLAGS.export_dir


def run(export_dir: str) -> None:
  encoder = encoders.load_encoder(FLAGS.model_dir, FLAGS.checkpoint_step)
  g = encoder.pretrain.model.grid
  export.export_encoder(encoder.model, g, export_dir)
  print(f"Exported the averaged encoder to {export_dir}\n"
        f"  patched:     images [B, {g.image_size}, {g.image_size}, 3] in [0, 1] -> "
        f"latents [B, {g.grid_size}, {g.grid_size}, D]\n"
        "  whole_image: images [B, H, W, 3] in [0, 1] -> the encoder's named outputs "
        "stem, stack1..K ([B, h, w, D]), pooled [B, D]", flush=True)


main = entry.main(build_config, run)


if __name__ == "__main__":
  app.run(main)
