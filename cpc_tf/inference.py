"""Forward-only passes (encoding, evaluation counts), optionally compiled with XLA.

Evaluation spends most of its time in forward passes of the frozen or trained
encoder: the linear protocol encodes every image once (supp. B), the few-label
protocols validate and test whole images (supp. C). On the CPU, XLA fuses the
small convolutions, layer norms and pads of those passes and runs them about
twice as fast (`benchmarks/inference_bench.py`; figures in
`benchmarks/inference_bench.md`). Training steps are not compiled: there XLA was
slower on both hosts measured (`benchmarks/pretrain_bench.md`).

The compiled pass computes the same function; floats differ by rounding only
(tests/test_inference.py bounds it). XLA compiles once per input shape, so a
last, smaller batch costs one more compilation.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

def forward(fn: Callable, *, xla: bool, **kwargs) -> tf.types.experimental.GenericFunction:
  """`fn` as a tf.function; with xla, compiled whole by XLA (`jit_compile=True`).

  kwargs go to tf.function (e.g. reduce_retracing, input_signature). Call it on
  inputs of a few fixed shapes: each new shape is a new compilation.
  """
  return tf.function(fn, jit_compile=bool(xla), **kwargs)
