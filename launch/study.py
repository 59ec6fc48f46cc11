r"""The claim study: CPC pre-training, then linear and few-label evaluation against
a random-initialisation encoder and a supervised baseline on the same labels.

README main command (set-up included; this binary is its second half):
  bash scripts/study.sh
which runs
  python -m launch.study --preset=study_fashion_mnist --output_dir=runs/study

Stages, in order (cpc_tf/eval/study.py): pre-training (launch/pretrain.py's
loop), linear evaluation (supp. B) of the CPC encoder and of the same
architecture at random initialisation, then for each label fraction (every
subset seed at the smallest) few-label classification with the CPC encoder,
frozen then fine-tuned (supp. C.2), and the supervised baseline from pixels on
the same labelled images (supp. C.1). Each stage prints its own progress and
its wall time; at the end the binary prints the report: a Table-5-shaped Top-1
table (test split; "mean ± std (n=3)" at the smallest fraction), the images
each row trained on, whether the claim's targets were met, and the stage times.

Writes into --output_dir: study.md, study.png (Top-1 and Top-5 against the
label fraction, log axis), study.json, timings.json, and every stage's own
output directory. Rerun the same command to resume: finished stages are read
back, an interrupted one continues from its checkpoints. SIGTERM / Ctrl-C save
a checkpoint and exit with 128 + the signal number.
"""

from __future__ import annotations

import os
import sys

from absl import app
from absl import flags

from cpc_tf import distribute, records, train
from cpc_tf.data import DataError
from cpc_tf.eval import loop, study
from cpc_tf.stop import Preempted
from flags import common
from flags import study as study_flags

study_flags.define_flags()
flags.adopt_module_key_flags(study_flags)
flags.adopt_module_key_flags(common)
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  try:
    records.check_writable(FLAGS.output_dir, "--output_dir")
    config = study_flags.config_from_flags(FLAGS)
    common.check_strategy_flags(FLAGS)
    strategy = distribute.make_strategy(FLAGS.strategy, FLAGS.tpu)
    study.run(config, FLAGS.output_dir, strategy)
  except (Preempted, loop.Stopped) as e:
    print(f"Stopped: {e}. Rerun the same command to continue.", flush=True)
    sys.exit(e.status)
  except (ValueError, FileNotFoundError, DataError, train.NonFiniteLossError,
          records.WriteError) as e:
    sys.exit(f"Error: {e}")
  for name in ("study.md", "study.png", study.SUMMARY_FILE):
    print(f"Wrote {os.path.join(FLAGS.output_dir, name)}")


if __name__ == "__main__":
  app.run(main)
