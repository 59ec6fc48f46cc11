"""ResNet-v2 (pre-activation, bottleneck) encoders built from one spec table.

Glossary: N images or patches, h/w their size, D feature depth of a stack.

The encoder maps float32 images `[N, h, w, 3]` in [0, 1] to a dict of named
outputs, the same for a batch of patches and for whole images:
  stem     [N, h/4, w/4, 64]  after the 7x7/2 conv and 3x3/2 max pool
  stackK   [N, hK, wK, D_K]   residual stream after stack K (the last stack
                              includes the v2 final norm + ReLU)
  pooled   [N, D]             spatial mean of the last stack
A 224x224 image gives a 14x14 grid with the CPC encoders (total stride 16).
The encoder knows nothing about patches, freezing or protocols.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import tensorflow as tf

from cpc_tf.configs import EncoderConfig
from cpc_tf.layer_norm import ChannelLayerNorm
from cpc_tf.padding import symmetric_pad
from cpc_tf.pointwise import PointwiseConv2D


@dataclass(frozen=True)
class StackSpec:
  blocks: int
  out_dim: int  # feature maps of the residual stream
  bottleneck: int
  stride: int  # applied in the first block (3x3 conv and projection shortcut)


@dataclass(frozen=True)
class ResNetSpec:
  stem_dim: int
  stem_kernel: int
  stem_stride: int
  stem_pool: bool
  stacks: tuple[StackSpec, ...]


def _v2(blocks: tuple[int, ...]) -> ResNetSpec:
  """Standard ImageNet ResNet-v2 (He et al. 2016) with the given blocks per stack."""
  widths = ((256, 64, 1), (512, 128, 2), (1024, 256, 2), (2048, 512, 2))
  return ResNetSpec(64, 7, 2, True,
                    tuple(StackSpec(n, d, b, s) for n, (d, b, s) in zip(blocks, widths)))


SPECS: dict[str, ResNetSpec] = {
    # ICLR 4.1 / supp. A: first 3 stacks of ResNet-101-v2, stack 3 grown to
    # 46 blocks of 4096 maps with a 512 bottleneck ("ResNet-170" in arXiv v1).
    "resnet161": ResNetSpec(64, 7, 2, True, (
        StackSpec(3, 256, 64, 1), StackSpec(4, 512, 128, 2), StackSpec(46, 4096, 512, 2))),
    # The original CPC encoder: the first 3 stacks of ResNet-101-v2.
    "resnet101_cpc_v1": ResNetSpec(64, 7, 2, True, (
        StackSpec(3, 256, 64, 1), StackSpec(4, 512, 128, 2), StackSpec(23, 1024, 256, 2))),
    # Supervised baselines (supp. C.1), all four stacks.
    "resnet50_v2": _v2((3, 4, 6, 3)),
    "resnet101_v2": _v2((3, 4, 23, 3)),
    "resnet152_v2": _v2((3, 8, 36, 3)),
    "resnet200_v2": _v2((3, 24, 36, 3)),
    # CPU-sized encoders: no stem down-sampling so 16 px patches keep detail.
    "small": ResNetSpec(32, 3, 1, False, (
        StackSpec(2, 64, 16, 1), StackSpec(2, 128, 32, 2), StackSpec(2, 256, 64, 2))),
    # "small" with one block per stack: the claim study's encoder (configs.
    # fashion_mnist_small), about 2.5x its steps per second at the same width.
    "compact": ResNetSpec(32, 3, 1, False, (
        StackSpec(1, 64, 16, 1), StackSpec(1, 128, 32, 2), StackSpec(1, 256, 64, 2))),
    # "compact" with a 4x wider last stack (1024 maps, 128 bottleneck), as ResNet-161
    # widens its last stack: more features for the linear protocol, on 2x2 maps per patch.
    "compact_wide": ResNetSpec(32, 3, 1, False, (
        StackSpec(1, 64, 16, 1), StackSpec(1, 128, 32, 2), StackSpec(1, 1024, 128, 2))),
    "tiny": ResNetSpec(8, 3, 1, False, (
        StackSpec(1, 16, 4, 1), StackSpec(1, 16, 4, 2), StackSpec(1, 32, 8, 2))),
    # CPU-sized detection backbone: the ImageNet layout (stem /4, stacks /1, /2, /2),
    # so its last stack is at stride 16 like the CPC encoders on whole images (ICLR 4.3).
    "detection_small": ResNetSpec(32, 3, 2, True, (
        StackSpec(1, 64, 16, 1), StackSpec(1, 128, 32, 2), StackSpec(2, 256, 64, 2))),
}


def spec(name: str) -> ResNetSpec:
  if name not in SPECS:
    raise ValueError(f"Unknown encoder {name!r}; choose one of {sorted(SPECS)}.")
  return SPECS[name]


@keras.saving.register_keras_serializable(package="cpc_tf")  # export's encoder.keras
class Pad2D(keras.layers.Layer):
  """Pads H and W by `before`/`after` pixels, mirroring (SYMMETRIC) or with zeros."""

  def __init__(self, before: int, after: int, symmetric: bool, **kwargs):
    super().__init__(**kwargs)
    self.before, self.after, self.symmetric = before, after, symmetric

  def call(self, x):
    if self.symmetric:  # tf.pad(mode="SYMMETRIC") with a faster gradient
      return symmetric_pad(x, self.before, self.after)
    return tf.pad(x, [[0, 0], [self.before, self.after], [self.before, self.after], [0, 0]])

  def compute_output_shape(self, input_shape):
    grow = lambda n: None if n is None else n + self.before + self.after
    return (input_shape[0], grow(input_shape[1]), grow(input_shape[2]), input_shape[3])

  def get_config(self):
    return {**super().get_config(), "before": self.before, "after": self.after,
            "symmetric": self.symmetric}


@keras.saving.register_keras_serializable(package="cpc_tf")  # export's encoder.keras
class ExampleLayerNorm(keras.layers.Layer):
  """Layer norm per example over (H, W, C), scale and offset per channel.

  The reading of "layer normalization" that tf.contrib.layers.layer_norm's
  2019 defaults give (begin_norm_axis=1, begin_params_axis=-1). Each patch is
  its own example in the encoder, so statistics still never cross patches.
  """

  def __init__(self, epsilon: float = 1e-5, **kwargs):
    super().__init__(**kwargs)
    self.epsilon = epsilon

  def build(self, input_shape):
    c = input_shape[-1]
    self.gamma = self.add_weight(name="gamma", shape=(c,), initializer="ones")
    self.beta = self.add_weight(name="beta", shape=(c,), initializer="zeros")

  def call(self, x):
    # Statistics in float32 under the mixed policies, as Keras' LayerNormalization.
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[1, 2, 3], keepdims=True)
    y = (x32 - mean) * tf.math.rsqrt(variance + self.epsilon)
    y = y * tf.cast(self.gamma, tf.float32) + tf.cast(self.beta, tf.float32)
    return tf.cast(y, x.dtype)

  def get_config(self):
    return {**super().get_config(), "epsilon": self.epsilon}


class Builder:
  """Creates ResNet-v2 layers; every conv pads explicitly, then runs VALID.

  The one bottleneck-block builder of the package: the encoders below and the
  supp. C.2 classifier head (`cpc_tf.eval.classifiers.ResNetHead`) use it.
  norm: "layer", "layer_example", "batch" or "none"; symmetric: mirror (True) or zero padding;
  epsilon: of every normalisation layer; bn_momentum: of batch norm's moving
  statistics (Keras' 0.99 by default; short runs need less memory, see
  configs.BN_MOMENTUM). Convolutions carry a bias only without normalisation
  (a norm's offset makes it redundant).
  """

  def __init__(self, norm: str, symmetric: bool, epsilon: float, bn_momentum: float = 0.99):
    self.norm = norm
    self.symmetric = symmetric
    self.bn_momentum = bn_momentum
    self.epsilon = epsilon

  def conv(self, x, filters: int, kernel: int, stride: int, name: str):
    use_bias = self.norm == "none"
    if kernel == 1:  # Conv2D's variables and outputs, computed as a matmul (faster)
      return PointwiseConv2D(filters, strides=stride, use_bias=use_bias, name=name)(x)
    # arXiv v1 4.2: symmetric padding in all convolutions (zeros when off).
    total = kernel - 1
    x = Pad2D(total // 2, total - total // 2, self.symmetric, name=f"{name}_pad")(x)
    return keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="valid", use_bias=use_bias, name=name)(x)

  def norm_act(self, x, name: str):
    if self.norm == "layer":
      # ICLR 4.1 says layer norm; we normalise over channels at each position
      # (interpretation), so no statistic mixes patches, positions or images and
      # the encoder behaves the same on patches and on whole images.
      # ChannelLayerNorm: LayerNormalization(axis=-1) with a faster gradient.
      x = ChannelLayerNorm(epsilon=self.epsilon, name=f"{name}_ln")(x)
    elif self.norm == "layer_example":  # the other reading (SPEC 7): over (H, W, C)
      x = ExampleLayerNorm(epsilon=self.epsilon, name=f"{name}_ln")(x)
    elif self.norm == "batch":
      x = keras.layers.BatchNormalization(epsilon=self.epsilon, momentum=self.bn_momentum,
                                          name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)

  def block(self, x, out_dim: int, bottleneck: int, stride: int, project: bool, name: str):
    """Pre-activation bottleneck [N, h, w, C] -> [N, h/stride, w/stride, out_dim]."""
    preact = self.norm_act(x, f"{name}_preact")
    shortcut = (self.conv(preact, out_dim, 1, stride, f"{name}_proj")
                if project else x)
    h = self.conv(preact, bottleneck, 1, 1, f"{name}_conv1")
    h = self.norm_act(h, f"{name}_1")
    h = self.conv(h, bottleneck, 3, stride, f"{name}_conv2")
    h = self.norm_act(h, f"{name}_2")
    h = self.conv(h, out_dim, 1, 1, f"{name}_conv3")
    return keras.layers.Add(name=f"{name}_add")([shortcut, h])


@keras.saving.register_keras_serializable(package="cpc_tf")  # export's encoder.keras
class RecomputeGrad(keras.layers.Layer):
  """Runs `stack` (a functional sub-model) under tf.recompute_grad.

  The forward pass keeps only the stack's input; the backward pass runs the
  stack again to rebuild its activations (EncoderConfig.remat). Batch norm
  would update its moving statistics twice per step; layer norm has none.
  """

  def __init__(self, stack: keras.Model, **kwargs):
    super().__init__(**kwargs)
    self.stack = stack

  def call(self, x, training=None):
    return tf.recompute_grad(lambda h: self.stack(h, training=training))(x)

  def compute_output_shape(self, input_shape):
    return self.stack.compute_output_shape(input_shape)

  def get_config(self):
    return {**super().get_config(), "stack": keras.saving.serialize_keras_object(self.stack)}

  @classmethod
  def from_config(cls, config):
    config = dict(config)
    stack = keras.saving.deserialize_keras_object(config.pop("stack"))
    return cls(stack, **config)


def build_encoder(config: EncoderConfig, name: str | None = None,
                  bn_momentum: float = 0.99) -> keras.Model:
  """Functional ResNet-v2: images [N, h, w, 3] in [0, 1] -> dict of named outputs.

  bn_momentum matters only for norm="batch" (the supervised baselines).
  """
  s = spec(config.name)
  # Epsilon 1e-5: the encoder's value since its first release (the paper states none).
  b = Builder(config.norm, config.symmetric_padding, epsilon=1e-5, bn_momentum=bn_momentum)
  images = keras.Input(shape=(None, None, 3), name="images")
  x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(images)  # [0,1] -> [-1,1]
  x = b.conv(x, s.stem_dim, s.stem_kernel, s.stem_stride, "stem_conv")
  if s.stem_pool:
    x = Pad2D(1, 1, config.symmetric_padding, name="stem_pool_pad")(x)
    x = keras.layers.MaxPool2D(3, strides=2, padding="valid", name="stem_pool")(x)
  outputs = {"stem": x}
  for k, st in enumerate(s.stacks, start=1):
    if config.remat:
      stack_in = h = keras.Input(shape=(None, None, x.shape[-1]), name=f"stack{k}_in")
    else:
      h = x
    for j in range(st.blocks):
      # A projection shortcut in the first block of each stack (width or stride change).
      h = b.block(h, st.out_dim, st.bottleneck, st.stride if j == 0 else 1,
                  project=j == 0, name=f"stack{k}_block{j + 1}")
    if config.remat:
      h = RecomputeGrad(keras.Model(stack_in, h, name=f"stack{k}_blocks"),
                        name=f"stack{k}_remat")(x)
    x = h
    if k == len(s.stacks):
      x = b.norm_act(x, "final")  # v2: the residual stream is normalised once at the end
    outputs[f"stack{k}"] = x
  outputs["pooled"] = keras.layers.GlobalAveragePooling2D(name="pooled")(x)
  return keras.Model(images, outputs, name=name or config.name)


def feature_dim(config: EncoderConfig) -> int:
  """D of the encoder's `pooled` output."""
  return spec(config.name).stacks[-1].out_dim


def last_stack(output_names) -> str:
  """Name of the last "stackK" among an encoder's outputs (the feature grid)."""
  stacks = sorted((k for k in output_names if k.startswith("stack")),
                  key=lambda k: int(k[len("stack"):]))
  if not stacks:
    raise ValueError(f"The encoder has no stackK output; it has {sorted(output_names)}.")
  return stacks[-1]


def conv_layers(encoder: keras.Model) -> list[keras.layers.Conv2D]:
  """The encoder's convolutions, also those inside recomputed stacks (remat)."""
  out = []
  for layer in encoder.layers:
    if isinstance(layer, RecomputeGrad):
      out += conv_layers(layer.stack)
    elif isinstance(layer, keras.layers.Conv2D):
      out.append(layer)
  return out


def conv_kernel_count(encoder: keras.Model) -> int:
  """Number of convolution kernel weights (no biases, no normalisation parameters)."""
  return sum(int(layer.kernel.shape.num_elements()) for layer in conv_layers(encoder))
