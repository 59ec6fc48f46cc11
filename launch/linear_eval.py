r"""Linear classification on a frozen CPC encoder (supp. B).

Command (seconds on 2 CPU cores, after launch/pretrain.py --preset=tiny):
  python -m launch.linear_eval --preset=linear_eval_tiny \
    --model_dir=runs/tiny --output_dir=runs/tiny_linear

Paper-size run (ImageNet, ResNet-161; paper: 71.5% / 90.1% Top-1 / Top-5):
  python -m launch.linear_eval --preset=linear_eval_paper --model_dir=gs://... \
    --data_dir=gs://... --output_dir=gs://... --strategy=tpu --tpu=NAME

The encoder is applied to the pre-training patch grid (--grid=linear_iclr for
ICLR A.3's 240 px / 80 / 32 grid); training images get the pre-training
augmentation, test images a single centre crop. Batch norm without scale, a
1x1 conv to the class logits, their spatial mean; Adam at --learning_rate.

Prints one line per --eval_every steps (step, training loss), then
"test: top-1 ... top-5 ..." and the results table. Writes into --output_dir:
config.json, linear/ckpt-* (head + Adam + step), results.json (protocol
"linear", one "CPC v2 linear" row on the test split).

Rerun the same command to resume. --stop_after_steps=N stops after N steps
with status 75 (checkpoint saved; rerun to continue).
"""

from __future__ import annotations

from absl import app
from absl import flags

from cpc_tf.eval import linear
from flags import common, config_flags, evaluation
from launch import entry

evaluation.define_flags("linear")
flags.adopt_module_key_flags(evaluation)
FLAGS = flags.FLAGS


def run(config) -> None:
  strategy = common.make_strategy(FLAGS)
  evaluation.print_table(linear.train_linear(
      FLAGS.model_dir, config, FLAGS.output_dir, strategy, step=FLAGS.checkpoint_step,
      stop_after_steps=FLAGS.stop_after_steps))


main = entry.main(lambda: evaluation.build_config("linear", FLAGS), run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
