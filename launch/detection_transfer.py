r"""Transfer to detection: Faster R-CNN on PASCAL VOC 2007 with the CPC encoder (ICLR 4.3).

Command (CPU demo on the synthetic shapes set, a small backbone from pixels):
  python -m launch.detection_transfer --preset=detection_synthetic \
    --output_dir=runs/det_synthetic

Paper-size run (VOC 2007 trainval -> test, ResNet-161 CPC encoder, 600 px;
paper, Table 3: 70.6 mAP with ResNet-101, 72.7 with ResNet-161):
  python -m launch.detection_transfer --preset=detection_paper --model_dir=gs://... \
    --data_dir=gs://... --output_dir=gs://... --strategy=tpu --tpu=NAME
--dataset=folder:/path/VOCdevkit reads a VOC folder as downloaded instead of TFDS;
--backbone=random --architecture=NAME trains the encoder from pixels (baseline).

Supervised transfer (Table 3's supervised row): --model_dir may be the
--output_dir of a finished launch/supervised_baseline.py run whose architecture
ends at stride 16; its best sweep point's encoder is the backbone, rows read
"Supervised <architecture>". On CPU:
  python -m launch.supervised_baseline --preset=supervised_tiny \
    --architecture=detection_small --output_dir=runs/sup_det
  python -m launch.detection_transfer --preset=detection_synthetic \
    --backbone=pretrained --model_dir=runs/sup_det --output_dir=runs/det_sup
A batch-norm backbone keeps its moving statistics fixed (phase 2 too, unless
--backbone_batch_stats).

Phase 1 trains RPN and box head on the frozen backbone, phase 2 everything
(backbone with Adam at --encoder_learning_rate); each validates the VOC07
11-point mAP@0.5 every --eval_every steps and keeps its best weights.

Prints one line per --eval_every steps (step, loss, validation mAP), then
"test: mAP@0.5 ..." with the per-class AP and the results table. Writes into
--output_dir: config.json, frozen/ and finetune/ checkpoints, results.json
(protocol "detection"; `launch/report.py` turns it into a Table-3-like table).

Rerun the same command to resume. --stop_after_steps=N stops after N steps
with status 75 (checkpoint saved; rerun to continue).
"""

from __future__ import annotations

from absl import app
from absl import flags

from cpc_tf.eval import detection
from flags import common, config_flags, evaluation
from launch import entry

evaluation.define_flags("detection")
flags.adopt_module_key_flags(evaluation)
FLAGS = flags.FLAGS


def run(config) -> None:
  strategy = common.make_strategy(FLAGS)
  evaluation.print_table(detection.train_detection(
      FLAGS.model_dir, config, FLAGS.output_dir, strategy, step=FLAGS.checkpoint_step,
      stop_after_steps=FLAGS.stop_after_steps))


main = entry.main(lambda: evaluation.build_config("detection", FLAGS), run)


if __name__ == "__main__":
  app.run(main, flags_parser=config_flags.parse_flags)
