r"""Learning dynamics (arXiv v1 7.3, Figure 5): frozen-encoder accuracy per checkpoint.

Command (a few minutes on 2 CPU cores, after
`python -m launch.pretrain --preset=tiny --model_dir=runs/tiny`):
  python -m launch.learning_dynamics --preset=efficient_tiny --model_dir=runs/tiny \
    --steps=all --label_fractions=0.5,1.0 --output_dir=runs/tiny_dynamics

Paper-size run (arXiv v1 7.3 names checkpoints 0, 40k, ..., 350k; the
spacing below is an example. Pre-train with --keep_checkpoints large enough
to keep them):
  python -m launch.learning_dynamics --preset=efficient_paper --model_dir=gs://... \
    --data_dir=gs://... \
    --steps=0,40000,80000,120000,160000,200000,240000,280000,320000,350000 \
    --label_fractions=0.01,0.02,0.05,0.1,0.2,0.5,1.0 --output_dir=gs://... \
    --strategy=tpu --tpu=NAME

For every step of --steps ("all": step 0 and every ckpt-<step> of
--model_dir) and every fraction of --label_fractions, trains the supp. C.2
classifier on the frozen encoder of that checkpoint (phase 1 of
launch/efficient_classification.py: sweep, validation, test; no fine-tuning).
Step 0 is the randomly initialised network, built from --model_dir's
config.json with --seed and saved once in <output_dir>/random_init.

Prints one line per (step, fraction) cell ("training ..." or "done earlier,
skipped"), the classifier's own progress lines, then the Top-1 / Top-5
Markdown tables (test split; rows: checkpoints; columns: label fractions) and
the paths written. Writes into --output_dir: step-<step>/labels-<f>/ (one
classifier run each), results.json (protocol "dynamics", every row with its
checkpoint_step), dynamics.csv, dynamics.md and dynamics.png (accuracy
against label fraction, one curve per checkpoint, later = darker).

Rerun the same command to resume: finished cells are skipped, an interrupted
one continues from its checkpoints; adding steps or fractions runs only the
new cells.
"""

from __future__ import annotations

import os

import tensorflow as tf
from absl import app
from absl import flags

from cpc_tf import configs, records
from cpc_tf.drivers import dynamics
from cpc_tf.eval import efficient, results
from flags import common, config_flags
from flags import dynamics as dynamics_flags
from launch import entry

dynamics_flags.define_flags()
flags.adopt_module_key_flags(dynamics_flags)
flags.adopt_module_key_flags(common)
FLAGS = flags.FLAGS


def build_config() -> configs.DynamicsConfig:
  records.check_writable(FLAGS.output_dir, "--output_dir")
  config = dynamics_flags.config_from_flags(FLAGS)
  common.check_strategy_flags(FLAGS)
  return config


def run(config: configs.DynamicsConfig) -> None:
  strategy = common.make_strategy(FLAGS)

  def cell(enc_dir, enc_step, cell_config, out, subset_file):
    return efficient.train_efficient(enc_dir, cell_config, out, strategy, step=enc_step,
                                     subset_file=subset_file)

  dynamics.run(FLAGS.model_dir, FLAGS.output_dir, config, strategy, cell_fn=cell)
  with tf.io.gfile.GFile(os.path.join(FLAGS.output_dir, dynamics.MARKDOWN_FILE)) as f:
    print(f.read(), flush=True)
  for name in (results.RESULTS_FILE, dynamics.CSV_FILE, dynamics.MARKDOWN_FILE,
               dynamics.PLOT_FILE):
    print(f"Wrote {os.path.join(FLAGS.output_dir, name)}")


main = entry.main(build_config, run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
