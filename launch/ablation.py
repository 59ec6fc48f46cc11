r"""A small-scale ICLR Figure 3: pre-train each rung for one budget, linear-evaluate it.

Command (the v1 -> v2 ladder on the embedded Fashion-MNIST with small
encoders; about 11 runs of 300 steps plus a linear protocol each):
  python -m launch.ablation --preset=ablation_fashion_mnist --output_dir=runs/ablation

Any list of pre-training presets, e.g. the two layer-norm readings:
  python -m launch.ablation --presets=ladder_ln,ladder_rc \
    --override=model.encoder.norm=layer_example --output_dir=runs/ln_example

For each preset of --presets (ladder presets: cpc_v1, ladder_bu, ladder_hf,
ladder_ln, ladder_rc, ladder_tl, ladder_hp, ladder_mc, ladder_lp, ladder_pa,
cpc_v2_paper), the run config is the preset with the ablation preset's small
encoder / grid / jitter substitutions, the dataset, --batch_size,
--train_steps and --seed, then every --override. Each run is pre-trained
(launch/pretrain.py's loop) and evaluated with the linear protocol (supp. B).

Prints one line per preset (training, done earlier, or reusing an identical
earlier run), the runs' own progress, then the table. Writes into
--output_dir: <preset>/pretrain (model_dir), <preset>/linear (results.json),
ablation.json, ablation.csv, ablation.md and ablation.png (Top-1 per rung,
coloured by the number of directions as in ICLR Figure 3).

Rerun the same command to resume: finished presets are skipped, an
interrupted one continues from its checkpoints; more presets can be added.
SIGTERM during pre-training saves a checkpoint and exits with status 143.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import app
from absl import flags

from cpc_tf.drivers import ablation
from flags import ablation as ablation_flags
from flags import common
from flags import config_flags
from launch import entry

ablation_flags.define_flags()
flags.adopt_module_key_flags(ablation_flags)
flags.adopt_module_key_flags(common)
FLAGS = flags.FLAGS


def report(output_dir: str) -> None:
  with tf.io.gfile.GFile(os.path.join(output_dir, ablation.MARKDOWN_FILE)) as f:
    print(f.read(), flush=True)
  for name in (ablation.CSV_FILE, ablation.MARKDOWN_FILE, ablation.PLOT_FILE):
    print(f"Wrote {os.path.join(output_dir, name)}")


def run(config) -> None:
  ablation.run(config, FLAGS.output_dir, common.make_strategy(FLAGS))
  report(FLAGS.output_dir)


main = entry.main(lambda: common.driver_config(ablation_flags.config_from_flags, FLAGS),
                  run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
