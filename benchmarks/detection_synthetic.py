"""Faster R-CNN learns: train on the synthetic shapes set on the CPU, report mAP@0.5.

Run from the repository root:
  .venv/bin/python -m benchmarks.detection_synthetic --max_steps 1000 --minutes 30 --eval_every 250
Trains the "detection_small" ResNet-v2 (stride 16) from scratch with the
`synthetic_small` detector config and plain Adam, then evaluates VOC07 11-point
mAP@0.5 on a held-out synthetic split. Prints steps, losses, wall time (with
the load average: the machine may be shared) and mAP.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import configs, resnet
from cpc_tf.configs import EncoderConfig
from cpc_tf.data import synthetic
from cpc_tf.detection import detector as det_lib
from cpc_tf.detection.voc_eval import VOCEvaluator


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--minutes", type=float, default=8.0, help="training wall-time budget")
  parser.add_argument("--max_steps", type=int, default=100000)
  parser.add_argument("--batch", type=int, default=8)
  parser.add_argument("--lr", type=float, default=1e-3)
  parser.add_argument("--train_images", type=int, default=4000)
  parser.add_argument("--test_images", type=int, default=300)
  parser.add_argument("--image_size", type=int, default=128)
  parser.add_argument("--head", default="fc", choices=configs.HEADS)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--eval_every", type=int, default=0,
                      help="steps between mAP checks on 100 test images (0: only at the end)")
  args = parser.parse_args()

  keras.utils.set_random_seed(args.seed)
  backbone = resnet.build_encoder(EncoderConfig(name="detection_small", norm="layer"))
  feature = resnet.last_stack(backbone.output.keys())
  config = dataclasses.replace(configs.detector_synthetic_small(), head=args.head)
  model = det_lib.FasterRCNN(backbone, len(synthetic.CLASS_NAMES), config, feature=feature)
  print(f"parameters: {det_lib.parameter_count(model):,}")
  optimizer = keras.optimizers.Adam(args.lr)
  optimizer.build(model.trainable_variables)

  @tf.function
  def train_step(batch):
    with tf.GradientTape() as tape:
      parts, total = det_lib.batch_losses(model, batch)
    grads = tape.gradient(total, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return parts, total

  detect = tf.function(model.detect)

  def evaluate(num_images):
    evaluator = VOCEvaluator(len(synthetic.CLASS_NAMES))
    test = synthetic.synthetic_detection_dataset(
        num_images, args.batch, args.seed, split="test", training=False,
        image_size=args.image_size)
    for batch in test:
      out = detect(batch["image"], batch["image_size"])
      evaluator.add_batch(batch["boxes"], batch["labels"], batch["difficult"], out)
    return evaluator.result()

  train = synthetic.synthetic_detection_dataset(
      args.train_images, args.batch, args.seed, split="train", image_size=args.image_size)
  start = time.time()
  step, running = 0, []
  for batch in train:
    parts, total = train_step(batch)
    running.append([float(total)] + [float(v) for v in parts.values()])
    step += 1
    if step % 50 == 0:
      mean = np.mean(running, 0)
      names = ["total"] + list(parts)
      print(f"step {step} {time.time() - start:.0f}s " +
            " ".join(f"{n}={v:.3f}" for n, v in zip(names, mean)), flush=True)
      running = []
    if args.eval_every and step % args.eval_every == 0:
      t0 = time.time()
      print(f"step {step}: mAP@0.5 on 100 test images {evaluate(100)['map']:.3f} "
            f"(eval {time.time() - t0:.0f} s, not counted as training time)", flush=True)
      start += time.time() - t0
    if step >= args.max_steps or time.time() - start > 60 * args.minutes:
      break
  train_time = time.time() - start
  t0 = time.time()
  result = evaluate(args.test_images)

  print(f"steps {step}, batch {args.batch}, train wall time {train_time:.0f} s "
        f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores), "
        f"eval {time.time() - t0:.0f} s on {args.test_images} held-out images")
  print("AP per class: " + ", ".join(
      f"{n}={a:.3f}" for n, a in zip(synthetic.CLASS_NAMES, result["ap"])))
  print(f"mAP@0.5 (VOC07 11-point): {result['map']:.3f}")


if __name__ == "__main__":
  main()
