"""1x1 convolutions as matrix products (a speed-up, same variables and numbers).

Glossary: N images or patches, h/w map size, C input channels, F filters, s stride.

On small maps oneDNN's 1x1 convolutions cost more than the matrix product they
are, most of all with stride 2 (timings: benchmarks/pretrain_bench.md). A 1x1
convolution with stride s reads rows and columns 0, s, 2s, ...: we take those
with a reshape and a slice (whose gradient is a pad, not a scatter) and
multiply by the [C, F] kernel.
The layer keeps Conv2D's variables ([1, 1, C, F] kernel, bias), so
checkpoints and exports read the same as with keras.layers.Conv2D.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def subsample(x: tf.Tensor, stride: int) -> tf.Tensor:
  """[N, h, w, C] -> [N, ceil(h/s), ceil(w/s), C]: rows and columns 0, s, 2s, ..."""
  if stride == 1:
    return x
  c = x.shape[-1]
  shape = tf.shape(x)
  h, w = x.shape[1], x.shape[2]
  if h is None or w is None or h % stride or w % stride:
    # Pad the end to a multiple of s: the pad never lands on a kept row or column.
    x = tf.pad(x, [[0, 0], [0, (-shape[1]) % stride], [0, (-shape[2]) % stride], [0, 0]])
    shape = tf.shape(x)
  rows, cols = shape[1] // stride, shape[2] // stride
  x = tf.reshape(x, [shape[0], rows, stride, cols, stride * c])  # [N, h/s, s, w/s, s*C]
  x = tf.slice(x, [0, 0, 0, 0, 0], [-1, -1, 1, -1, c])          # offset 0 of each s x s cell
  return tf.reshape(x, [shape[0], rows, cols, c])


def pointwise_conv(x: tf.Tensor, kernel: tf.Tensor, stride: int = 1) -> tf.Tensor:
  """x [N, h, w, C], kernel [1, 1, C, F] -> [N, ceil(h/s), ceil(w/s), F] (VALID, no bias)."""
  c, f = kernel.shape[2], kernel.shape[3]
  if x.shape[-1] != c:
    raise ValueError(f"pointwise_conv: input has {x.shape[-1]} channels, kernel expects {c}.")
  x = subsample(x, stride)
  shape = tf.shape(x)
  y = tf.matmul(tf.reshape(x, [-1, c]), tf.reshape(kernel, [c, f]))
  return tf.reshape(y, tf.concat([shape[:3], [f]], 0))


@keras.saving.register_keras_serializable(package="cpc_tf")  # export's encoder.keras
class PointwiseConv2D(keras.layers.Conv2D):
  """`keras.layers.Conv2D(filters, 1, strides=s)` computed as a matrix product.

  Same arguments, variables and outputs (to float rounding) as Conv2D with a
  1x1 kernel, VALID padding and channels-last data; other forms are refused.
  """

  def __init__(self, filters: int, kernel_size=1, strides=1, **kwargs):
    super().__init__(filters, kernel_size, strides=strides, **kwargs)
    if (self.kernel_size != (1, 1) or self.strides[0] != self.strides[1]
        or self.padding != "valid" or self.data_format != "channels_last"
        or self.dilation_rate != (1, 1) or self.groups != 1):
      raise ValueError(
          "PointwiseConv2D is a 1x1, VALID, channels-last convolution with equal strides; "
          f"got kernel_size={self.kernel_size}, strides={self.strides}, "
          f"padding={self.padding!r}, data_format={self.data_format!r}, "
          f"dilation_rate={self.dilation_rate}, groups={self.groups}. "
          "Use keras.layers.Conv2D for other forms.")

  def convolution_op(self, inputs, kernel):
    return pointwise_conv(inputs, kernel, self.strides[0])
