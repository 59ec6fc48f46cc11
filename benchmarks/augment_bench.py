"""Patches per second of the per-patch augmentation, against Keras RandAugment layers.

Glossary: N = 36 patches per image (6x6 grid, supp. A), P = 80 patch size.

Rows, each fed by tf.data with one [N, P, P, 3] batch of patches per element:
  (a) cpc_tf v2 pipeline: supp. A steps 1-4 per patch (`augment_patches`);
  (b) cpc_tf step 1 alone: two RandAugment ops per patch (`rand_augment`);
  (c) Keras 3 `keras.layers.RandAugment` mapped over single patches (unbatch ->
      map -> batch), since on a batch it draws one set of ops for all patches;
  (d) keras_cv `RandAugment` on the batch (it draws per image internally), if
      keras_cv imports in this environment (it is no dependency of cpc_tf);
  (e) for reference, Keras 3 RandAugment on the whole batch: the ops are drawn
      once for all 36 patches (only their magnitudes per patch), i.e. NOT the
      per-patch augmentation of supp. A.
Keras layers use two ops per patch at factor / magnitude 0.9, as (b) uses
RandAugment level 9 of 10.

Command: python benchmarks/augment_bench.py [--seconds 8] [--rounds 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from cpc_tf.augment import augment_patches, rand_augment  # noqa: E402
from cpc_tf.configs import AugmentConfig  # noqa: E402

N, P = 36, 80  # supp. A: 6x6 grid of 80x80 patches


def _batches() -> tf.data.Dataset:
  """Endless (seed, patches) pairs; the seed changes every batch as in training."""
  patches = tf.random.stateless_uniform([N, P, P, 3], [0, 0])
  seeds = tf.data.Dataset.counter().map(lambda i: tf.stack([i, tf.zeros_like(i)]))
  return tf.data.Dataset.zip(seeds, tf.data.Dataset.from_tensors(patches).repeat())


def _measure(iterators: dict, seconds: float, rounds: int) -> dict:
  """Patches per second of each iterator, measured round-robin.

  The machine is shared, so its load drifts during a run: taking turns over
  several short rounds exposes every row to the same drift. Without prefetch
  each batch is computed on demand, so idle rows take no CPU.
  """
  batches = dict.fromkeys(iterators, 0)
  elapsed = dict.fromkeys(iterators, 0.0)
  for _ in range(rounds):
    for name, it in iterators.items():
      start = time.perf_counter()
      while time.perf_counter() - start < seconds / rounds:
        out = next(it)
        batches[name] += 1
      elapsed[name] += time.perf_counter() - start
      assert out.shape == (N, P, P, 3), out.shape
  return {name: batches[name] * N / elapsed[name] for name in iterators}


def _cases():
  v2 = AugmentConfig()
  yield "(a) cpc_tf v2 pipeline, supp. A steps 1-4", "yes", _batches().map(
      lambda seed, x: augment_patches(x, v2, seed))
  yield "(b) cpc_tf step 1 alone (2 RandAugment ops)", "yes", _batches().map(
      lambda seed, x: rand_augment(x, seed, v2.randaugment_num_ops,
                                   v2.randaugment_magnitude))
  layer = keras.layers.RandAugment(value_range=(0, 1), num_ops=2, factor=0.9, seed=0)
  yield "(c) Keras 3 RandAugment, mapped per patch", "yes", (
      _batches().map(lambda seed, x: x).unbatch().map(layer).batch(N))
  try:
    import keras_cv  # pylint: disable=import-outside-toplevel
  except ImportError as e:
    print(f"keras_cv unavailable in this environment ({e}); row (d) skipped.")
  else:
    kcv = keras_cv.layers.RandAugment(value_range=(0, 1), augmentations_per_image=2,
                                      magnitude=0.9, rate=1.0, seed=0)
    yield f"(d) keras_cv {keras_cv.__version__} RandAugment", "yes", _batches().map(
        lambda seed, x: kcv(x))
  batch_layer = keras.layers.RandAugment(value_range=(0, 1), num_ops=2, factor=0.9, seed=0)
  yield "(e) Keras 3 RandAugment on the batch (reference)", "no: ops drawn per batch", (
      _batches().map(lambda seed, x: batch_layer(x)))


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--seconds", type=float, default=8.0,
                      help="measuring time per row, after warm-up")
  parser.add_argument("--rounds", type=int, default=4,
                      help="the rows take turns this many times")
  args = parser.parse_args(argv)
  cases = list(_cases())
  iterators = {}
  options = tf.data.Options()
  # No background prefetch: a row computes only while it is being measured.
  options.experimental_optimization.inject_prefetch = False
  for name, _, ds in cases:
    iterators[name] = iter(ds.with_options(options))
    for _ in range(3):  # warm-up: tracing, thread pools
      next(iterators[name])
  rates = _measure(iterators, args.seconds, args.rounds)
  rows = [(name, per_patch, rates[name]) for name, per_patch, _ in cases]
  keras_per_patch = next(r for n, _, r in rows if n.startswith("(c)"))
  command = "python benchmarks/augment_bench.py " + " ".join(sys.argv[1:])
  print(f"\nCommand: `{command.strip()}`  ")
  load = os.getloadavg()[0]
  print(f"{N} patches of {P}x{P} per batch, TF {tf.__version__}, Keras {keras.__version__}, "
        f"{os.cpu_count()} CPU cores shared with other jobs (1-min load {load:.1f} at the "
        "end).\n")
  print("| pipeline | independent draw per patch | patches/s | vs (c) |")
  print("|---|---|---:|---:|")
  for name, per_patch, rate in rows:
    print(f"| {name} | {per_patch} | {rate:.0f} | {rate / keras_per_patch:.1f}x |")


if __name__ == "__main__":
  main()
