r"""Forward-pass benchmark: the evaluation passes with and without XLA (cpc_tf/inference.py).

Glossary: B batch, Gh/Gw patch grid, P patch size, S image side.

Two passes of a preset's encoder, as the evaluation protocols run them:
  grid_means  supp. B's encoding: patches [B, Gh, Gw, P, P, 3] -> the mean of the
              frozen encoder's patch vectors [B, D] (`linear.GridMeans`, the cache the
              study's linear rows train from)
  counts      supp. C's validation and test pass: images [B, S, S, 3] -> the
              few-label classifier's top-k hits and loss (`eval.loop.classification_counts`)
Each runs on a fixed random batch, plain tf.function against XLA, the two taking
turns for `--rounds` rounds of `--seconds` each (a load change on a shared machine
hits both alike). Prints per pass and mode the median images/s and the rounds'
min-max, the speed-up, and the largest difference between the two outputs
against their scale.

Command:
  python benchmarks/inference_bench.py --preset=fashion_mnist_study
Prints (2026-12-07, 2-core AMD EPYC without AVX-512, quiet): see
benchmarks/inference_bench.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from cpc_tf import configs, inference  # noqa: E402
from cpc_tf import model as model_lib  # noqa: E402
from cpc_tf.configs import registry  # noqa: E402
from cpc_tf.eval import classifiers  # noqa: E402
from cpc_tf.eval import loop as loop_lib  # noqa: E402


def passes(preset: str, batch: int, image_size: int):
  """{name: (fn of one input, input)} for the preset's encoder at random init."""
  pre = registry.get("pretrain", preset)
  encoder = model_lib.build_model(pre.model).encoder
  grid = pre.model.grid
  linear = classifiers.linear_classifier(encoder, grid, 10)
  patches = tf.random.stateless_uniform(
      [batch, grid.grid_size, grid.grid_size, grid.patch_size, grid.patch_size, 3], [0, 1])
  few = classifiers.efficient_classifier(encoder, configs.ClassifierConfig(
      blocks=1, width=128, bottleneck=32), 10, 0.0, image_size)
  images = tf.random.stateless_uniform([batch, image_size, image_size, 3], [2, 3])
  labels = tf.random.stateless_uniform([batch], [4, 5], 0, 10, tf.int64)
  return {
      "grid_means": (lambda x: tf.reduce_mean(linear.features(x), axis=[1, 2]), patches),
      "counts": (lambda b: loop_lib.classification_counts(few, b), (images, labels)),
  }


def first(out) -> np.ndarray:
  return np.asarray(out["loss"] if isinstance(out, dict) else out)


def main(argv: list[str]) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="fashion_mnist_study",
                      help="A pre-training preset (cpc_tf.configs.registry).")
  parser.add_argument("--batch", type=int, default=500,
                      help="Images per call (the study's eval_batch_size).")
  parser.add_argument("--image_size", type=int, default=28,
                      help="Side of the whole images of the counts pass.")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--seconds", type=float, default=10.0, help="Per round and mode.")
  args = parser.parse_args(argv)
  if args.batch < 1 or args.rounds < 1 or args.seconds <= 0:
    parser.error("--batch and --rounds must be >= 1 and --seconds > 0.")
  print(f"preset {args.preset}, batch {args.batch}, {args.rounds} rounds of "
        f"{args.seconds:g} s per mode; host: {os.cpu_count()} cores", flush=True)
  print("| pass | plain images/s (min-max) | XLA images/s (min-max) | speed-up | "
        "max |XLA - plain| / max |plain| |")
  print("|---|---:|---:|---:|---:|")
  for name, (fn, x) in passes(args.preset, args.batch, args.image_size).items():
    fns = {xla: inference.forward(fn, xla=xla) for xla in (False, True)}
    outs = {xla: first(f(x)) for xla, f in fns.items()}  # traces and compiles
    rates = {False: [], True: []}
    for _ in range(args.rounds):
      for xla, f in fns.items():
        start, n = time.perf_counter(), 0
        while time.perf_counter() - start < args.seconds:
          first(f(x))
          n += args.batch
        rates[xla].append(n / (time.perf_counter() - start))
    plain, xla = (statistics.median(rates[k]) for k in (False, True))
    diff = float(np.max(np.abs(outs[True] - outs[False])) / np.max(np.abs(outs[False])))
    print(f"| {name} | {plain:.1f} ({min(rates[False]):.1f}-{max(rates[False]):.1f}) | "
          f"{xla:.1f} ({min(rates[True]):.1f}-{max(rates[True]):.1f}) | "
          f"x{xla / plain:.2f} | {diff:.1e} |", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
