r"""Few-label classification with a pre-trained CPC encoder (supp. C.2).

Command (about a minute on 2 CPU cores, after launch/pretrain.py --preset=tiny):
  python -m launch.efficient_classification --preset=efficient_tiny \
    --model_dir=runs/tiny --label_fraction=0.5 --output_dir=runs/tiny_efficient

Paper-size run (ImageNet, 1% labels = imagenet2012_subset/1pct; paper:
46.3% / 72.9% Top-1 / Top-5 after fine-tuning):
  python -m launch.efficient_classification --preset=efficient_paper \
    --model_dir=gs://... --data_dir=gs://... --label_fraction=0.01 \
    --output_dir=gs://... --strategy=tpu --tpu=NAME

With an exported encoder (launch/export.py) instead of the checkpoint:
  python -m launch.efficient_classification --preset=efficient_tiny \
    --model_dir=runs/tiny/export --output_dir=runs/tiny_efficient_export

The encoder sees the whole image (224 px -> 14x14 grid, its last stack); an
11-block ResNet classifier, mean pooling, dropout and a linear layer follow.
--validation_size images are held out of the training split for model
selection; the labelled subset (--label_fraction) is drawn from the rest,
class-balanced with --subset_seed (or read from --subset_file); the test split
is read once, for the final report.
Phase 1: encoder frozen; --sweep_size points of the supp. C.1 grid (1 = the
given --learning_rate / --weight_decay / --dropout / --batch_per_replica),
each trained --frozen_steps with SGD (momentum --momentum; the weight decay
an L2 term in the loss, or Keras' decoupled decay: --weight_decay_mode), the
best validation step kept. Phase 2 (--finetune): encoder (Adam at
--encoder_learning_rate, pre-training's betas and epsilon unless
--encoder_beta_1 / --encoder_beta_2 / --encoder_epsilon say otherwise) and
classifier (SGD) fine-tuned from the best point, early-stopped on validation
(--patience).

Prints the sweep points, a line per validation (step, loss, validation Top-1 /
Top-5), "test: ..." after each phase and the results table. Writes into
--output_dir: config.json, subset.json (every training and validation id),
sweep.csv, point-<i>/{frozen,finetune}/ checkpoints, results.json (protocol
"efficient", rows "CPC v2 (frozen)" and "CPC v2 (fine-tuned)" on the
validation and test splits).

Rerun the same command to resume (finished sweep points are skipped).
--stop_after_steps=N stops after N steps with status 75 (rerun to continue).
"""

from __future__ import annotations

from absl import app
from absl import flags

from cpc_tf.eval import efficient
from flags import common, config_flags, evaluation
from launch import entry

evaluation.define_flags("efficient")
flags.adopt_module_key_flags(evaluation)
FLAGS = flags.FLAGS


def run(config) -> None:
  strategy = common.make_strategy(FLAGS)
  evaluation.print_table(efficient.train_efficient(
      FLAGS.model_dir, config, FLAGS.output_dir, strategy, step=FLAGS.checkpoint_step,
      subset_file=FLAGS.subset_file, stop_after_steps=FLAGS.stop_after_steps))


main = entry.main(lambda: evaluation.build_config("efficient", FLAGS), run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
