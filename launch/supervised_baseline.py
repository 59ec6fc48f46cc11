r"""Purely supervised ResNet-v2 baseline on the same label subsets (supp. C.1).

Command (under a minute on 2 CPU cores):
  python -m launch.supervised_baseline --preset=supervised_tiny \
    --label_fraction=0.5 --output_dir=runs/tiny_supervised

Paper-size run (ImageNet, 1% labels; paper: 44.1% Top-5, ResNet-152 best):
  python -m launch.supervised_baseline --preset=supervised_paper \
    --architecture=resnet152_v2 --data_dir=gs://... --label_fraction=0.01 \
    --output_dir=gs://... --strategy=tpu --tpu=NAME

A ResNet-v2 (--architecture) from pixels with dropout before its last linear
layer; Inception random-sized crops plus the per-image supp. A steps 1-4;
the validation split, label subset and sweep of launch/efficient_classification
(SGD, weight decay as --weight_decay_mode says, --sweep_size points,
--train_steps each, best validation step kept).

Prints the sweep points, a line per validation, "test: ..." and the results
table. Writes into --output_dir: config.json, subset.json, sweep.csv,
point-<i>/supervised/ checkpoints, results.json (protocol "supervised", rows
"Supervised <architecture>" on the validation and test splits).

Rerun the same command to resume (finished sweep points are skipped).
--stop_after_steps=N stops after N steps with status 75 (rerun to continue).
"""

from __future__ import annotations

from absl import app
from absl import flags

from cpc_tf.eval import supervised
from flags import common, config_flags, evaluation
from launch import entry

evaluation.define_flags("supervised")
flags.adopt_module_key_flags(evaluation)
FLAGS = flags.FLAGS


def run(config) -> None:
  strategy = common.make_strategy(FLAGS)
  evaluation.print_table(supervised.train_supervised(
      config, FLAGS.output_dir, strategy, subset_file=FLAGS.subset_file,
      stop_after_steps=FLAGS.stop_after_steps))


main = entry.main(lambda: evaluation.build_config("supervised", FLAGS), run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
