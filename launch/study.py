r"""The claim study: CPC pre-training, then linear and few-label evaluation against
a random-initialisation encoder and a supervised baseline on the same labels.

README main command (set-up included; this binary is its second half):
  bash scripts/study.sh
which runs
  python -m launch.study --preset=study_fashion_mnist --output_dir=runs/study

On your own images (one sub-folder per class; train/ and test/ split folders
are used when present, else a seeded 10% of each class is held out as the test
split, never trained on, pre-training included):
  python -m launch.study --preset=study_fashion_mnist --dataset=folder:/data/mine \
    --image_size=32 --output_dir=runs/study_mine
--dataset also takes a TFDS name (--data_dir; --test_split=validation for
imagenet2012). Before any stage runs the data is checked (cpc_tf/drivers/study_data.py):
a folder without class sub-folders, a class too small for the smallest
--label_fractions or a validation carve, images too small for the patch grid,
or a test split that is a training split is refused in one line naming the fix.

Stages, in order (cpc_tf/drivers/study.py): pre-training (launch/pretrain.py's
loop), linear evaluation (supp. B) of the CPC encoder and of the same
architecture at random initialisation, then for each label fraction (every
subset seed at the smallest) few-label classification with the CPC encoder,
frozen then fine-tuned (supp. C.2), and the supervised baseline from pixels on
the same labelled images (supp. C.1). Each stage prints its own progress and
its wall time; at the end the binary prints the report: a Table-5-shaped Top-1
table (test split; "mean ± std (n=3)" at the smallest fraction), the images
each row trained on, whether the claim's targets were met, and the stage times.

Writes into --output_dir: study.md, study.png (Top-1 and Top-5 against the
label fraction, log axis), study_map.png (a 2-D map of the test embeddings, CPC
beside the random initialisation), study.json, timings.json (each stage's wall time, their
total, the set-up's and this invocation's), and every stage's own output
directory. `--preset=study_fashion_mnist_quick` is a smoke run (at most 10
minutes here) whose report says so at its top; `--preset=study_fashion_mnist_uncapped`
lifts the ResNet arms' 500-step cap (epochs and validation alone stop them).
Rerun the same command to resume: finished stages are read back, an interrupted
one continues from its checkpoints. SIGTERM / Ctrl-C save
a checkpoint and exit with 128 + the signal number.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from cpc_tf.drivers import study, study_data
from flags import common
from flags import config_flags
from flags import study as study_flags
from launch import entry

study_flags.define_flags()
flags.DEFINE_float("setup_seconds", None, "Wall seconds of set-up before this command "
                   "(scripts/study.sh measures and passes it): written to timings.json "
                   "beside the stages' times.")
flags.adopt_module_key_flags(study_flags)
flags.adopt_module_key_flags(common)
FLAGS = flags.FLAGS


def report(output_dir: str) -> None:
  for name in ("study.md", "study.png", study.MAP_FILE, study.SUMMARY_FILE):
    print(f"Wrote {os.path.join(output_dir, name)}")


def run(config) -> None:
  """Checks the data (one line on what was found), runs every stage, lists the files."""
  strategy = common.make_strategy(FLAGS)
  print(study_data.check(config).describe(), flush=True)
  study.run(config, FLAGS.output_dir, strategy, setup_seconds=FLAGS.setup_seconds)
  report(FLAGS.output_dir)


main = entry.main(lambda: common.driver_config(study_flags.config_from_flags, FLAGS), run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
