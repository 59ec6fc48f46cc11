"""float32 tolerances for one computation run by two different graphs or executions.

Eager Keras against a reloaded SavedModel, one device against MirroredStrategy, a batch
of 32 patches against 2: the maths is the same, but oneDNN picks kernels and fusions per
CPU (AVX-512 or not) and per shape, so sums are added in another order and the results
differ by rounding only. A float32 operation rounds to a relative F32_EPS; a sum of n
terms taken in another order moves by about sqrt(n) * F32_EPS * (the scale of its
terms); layers in series add their errors (normalisations keep them relative to the
activations' scale). Hence, for the largest element of the reference x,

    atol = F32_EPS * max|x| * sqrt(reduction) * depth

`reduction`: the longest sum behind one element (a conv's kh * kw * C_in, a weight
gradient's B * H * W); `depth`: the rounding layers in series (its kernels, twice that
for gradients). Adding the layers' errors linearly is the worst case (they typically
grow like sqrt(depth)), which covers the spread of the largest of many elements.

Exact comparisons stay where bit-identity is guaranteed: the same graph on the same
inputs, restored or frozen variables, data movement (patches, crops, flips), integers.
"""

import math

import numpy as np

F32_EPS = float(np.finfo(np.float32).eps)  # 2**-23 = 1.19e-7


def network_terms(model):
  """(reduction, depth) of a Keras model: its largest kernel fan-in, its number of kernels.

  Every weight of rank >= 2 is a kernel (Dense [C_in, C_out], Conv2D [kh, kw, C_in,
  C_out]); counting all of them over-counts parallel branches (projection shortcuts),
  which errs on the safe side.
  """
  kernels = [w for w in model.weights if len(w.shape) >= 2]
  if not kernels:
    raise ValueError(f"{model.name} has no kernel of rank >= 2 to derive a tolerance from.")
  return max(math.prod(w.shape[:-1]) for w in kernels), len(kernels)


def f32_atol(reference, reduction: int = 1, depth: int = 1) -> float:
  """The absolute tolerance above for float32 results of the scale of `reference`."""
  reference = np.asarray(reference, np.float64)
  scale = float(np.max(np.abs(reference))) if reference.size else 0.0
  return F32_EPS * scale * math.sqrt(reduction) * depth


def assert_close_f32(actual, reference, reduction: int = 1, depth: int = 1, err_msg="",
                     scale=None):
  """actual == reference up to f32_atol(scale, reduction, depth), element-wise.

  `scale` defaults to the reference itself. Pass the scale of the summed terms when the
  reference may be a cancellation (a gradient that is zero in exact arithmetic is
  float32 noise of the size of its terms): e.g. the largest gradient of the model.
  """
  atol = f32_atol(reference if scale is None else scale, reduction, depth)
  np.testing.assert_allclose(actual, reference, rtol=0.0, atol=atol, err_msg=err_msg)
