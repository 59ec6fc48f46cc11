"""Classification heads and the encoder + head model of every protocol.

Glossary: B batch, Gh/Gw patch grid, P patch size, S image side, h/w a feature
grid, D encoder feature depth, K classes.

  LinearHead     [B, Gh, Gw, D] -> BN without scale -> 1x1 conv -> mean -> [B, K]  (supp. B)
  ResNetHead     [B, h, w, D] -> bottleneck blocks -> mean -> dropout -> [B, K]  (supp. C.2)
  DropoutLinear  [B, D] -> dropout -> dense -> [B, K]                           (supp. C.1)
  Classifier     encoder + named encoder output + head; freezing is decided per call.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cpc_tf import patches as patches_lib
from cpc_tf import resnet
from cpc_tf.configs import ClassifierConfig, GridConfig


class LinearHead(keras.layers.Layer):
  """supp. B: batch norm without its scale, 1x1 conv to K logits, spatial mean of the logits."""

  def __init__(self, num_classes: int, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    # supp. B: "omitting the scale parameter"; a scale in front of a linear map is redundant.
    self.norm = keras.layers.BatchNormalization(scale=False, name="bn")
    self.conv = keras.layers.Conv2D(num_classes, 1, name="logits")

  def call(self, grid, training=False):
    """[B, Gh, Gw, D] -> [B, K]."""
    if grid.shape.rank != 4:
      raise ValueError(f"LinearHead expects a feature grid [B, Gh, Gw, D], got {grid.shape}.")
    logits = self.conv(self.norm(grid, training=training))
    return tf.reduce_mean(logits, axis=[1, 2])  # supp. B: mean-pool the logits


def _norm(kind: str, name: str):
  if kind == "batch":
    return keras.layers.BatchNormalization(name=name)
  if kind == "layer":
    return keras.layers.LayerNormalization(axis=-1, name=name)
  return keras.layers.Identity(name=name)


class _Bottleneck(keras.layers.Layer):
  """Pre-activation bottleneck block (ResNet-v2) of `width` maps; projects when asked."""

  def __init__(self, width: int, bottleneck: int, norm: str, project: bool, **kwargs):
    super().__init__(**kwargs)
    self.preact = _norm(norm, "preact_norm")
    self.proj = keras.layers.Conv2D(width, 1, use_bias=False, name="proj") if project else None
    self.conv1 = keras.layers.Conv2D(bottleneck, 1, use_bias=False, name="conv1")
    self.norm1 = _norm(norm, "norm1")
    self.conv2 = keras.layers.Conv2D(bottleneck, 3, padding="same", use_bias=False,
                                     name="conv2")
    self.norm2 = _norm(norm, "norm2")
    self.conv3 = keras.layers.Conv2D(width, 1, use_bias=False, name="conv3")

  def call(self, x, training=False):
    pre = tf.nn.relu(self.preact(x, training=training))
    shortcut = self.proj(pre) if self.proj is not None else x
    h = tf.nn.relu(self.norm1(self.conv1(pre), training=training))
    h = tf.nn.relu(self.norm2(self.conv2(h), training=training))
    return shortcut + self.conv3(h)


class ResNetHead(keras.layers.Layer):
  """supp. C.2: an 11-block ResNet (4096 maps, 1024 bottleneck), mean pool, dropout, linear."""

  def __init__(self, config: ClassifierConfig, num_classes: int, dropout: float, **kwargs):
    super().__init__(**kwargs)
    if config.blocks < 1:
      raise ValueError(f"ClassifierConfig.blocks={config.blocks}: need at least 1 block.")
    # One attribute per block: tf.train.Checkpoint does not follow Keras 3 lists.
    self.num_blocks = config.blocks
    for i in range(config.blocks):
      setattr(self, f"block{i + 1}", _Bottleneck(
          config.width, config.bottleneck, config.norm, project=i == 0, name=f"block{i + 1}"))
    self.final_norm = _norm(config.norm, "final_norm")
    self.dropout = keras.layers.Dropout(dropout, name="dropout")
    self.dense = keras.layers.Dense(num_classes, name="logits")

  @property
  def blocks(self) -> list:
    return [getattr(self, f"block{i + 1}") for i in range(self.num_blocks)]

  def call(self, grid, training=False):
    """[B, h, w, D] -> [B, K]."""
    if grid.shape.rank != 4:
      raise ValueError(f"ResNetHead expects a feature grid [B, h, w, D], got {grid.shape}.")
    x = grid
    for block in self.blocks:
      x = block(x, training=training)
    x = tf.nn.relu(self.final_norm(x, training=training))
    x = tf.reduce_mean(x, axis=[1, 2])
    # supp. C.2: dropout after the final mean pooling, before the linear classifier.
    return self.dense(self.dropout(x, training=training))


class DropoutLinear(keras.layers.Layer):
  """supp. C.1: dropout before the final linear layer of a supervised ResNet."""

  def __init__(self, num_classes: int, dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.dropout = keras.layers.Dropout(dropout, name="dropout")
    self.dense = keras.layers.Dense(num_classes, name="logits")

  def call(self, pooled, training=False):
    """[B, D] -> [B, K]."""
    if pooled.shape.rank != 2:
      raise ValueError(f"DropoutLinear expects pooled features [B, D], got {pooled.shape}.")
    return self.dense(self.dropout(pooled, training=training))


class Classifier(keras.Model):
  """Encoder -> its output `feature` -> head -> logits [B, K].

  With `grid` set, inputs are patch grids [B, Gh, Gw, P, P, 3]: every patch is
  encoded alone and its `feature` (a vector, "pooled") goes back on the grid,
  as in pre-training (supp. B). Otherwise inputs are images [B, S, S, 3].

  `train_encoder=False` runs the encoder in inference mode behind a
  stop_gradient, so no gradient or statistic update can reach it.
  """

  def __init__(self, encoder: keras.Model, head: keras.layers.Layer, feature: str,
               grid: GridConfig | None = None, **kwargs):
    super().__init__(**kwargs)
    if feature not in encoder.output:
      raise ValueError(f"The encoder has no output {feature!r}; it has "
                       f"{sorted(encoder.output)}.")
    self.encoder = encoder
    self.head = head
    self.feature = feature
    self.grid = grid

  def features(self, x, training=False, train_encoder=False):
    """Images [B, S, S, 3] or patches [B, Gh, Gw, P, P, 3] -> the head's input."""
    x = tf.convert_to_tensor(x)
    enc_training = training and train_encoder
    if self.grid is not None:
      g = self.grid
      want = (g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3)
      if x.shape.rank != 6 or tuple(x.shape[1:]) != want:
        raise ValueError(f"Expected patches [B, {', '.join(map(str, want))}], got shape "
                         f"{tuple(x.shape)}.")
      out = self.encoder(patches_lib.fold(x), training=enc_training)[self.feature]
      out = patches_lib.unfold(out, g.grid_size, g.grid_size)
    else:
      if x.shape.rank != 4:
        raise ValueError(f"Expected images [B, S, S, 3], got shape {tuple(x.shape)}.")
      out = self.encoder(x, training=enc_training)[self.feature]
    out = tf.cast(out, tf.float32)
    return out if train_encoder else tf.stop_gradient(out)

  def call(self, x, training=False, train_encoder=False):
    return self.head(self.features(x, training, train_encoder), training=training)


def last_stack(encoder: keras.Model) -> str:
  """Name of the encoder's last stack output ("stack3" for the CPC encoders).

  An exported encoder (`cpc_tf.eval.encoders.SavedModelEncoder`) calls it "features".
  """
  if "features" in encoder.output:
    return "features"
  return resnet.last_stack(encoder.output)


def build(model: Classifier, input_shape) -> Classifier:
  """Creates every variable by calling the model on zeros of `input_shape` (batch 2)."""
  model(tf.zeros([2, *input_shape]), training=False)
  return model


def linear_classifier(encoder: keras.Model, grid: GridConfig, num_classes: int) -> Classifier:
  """supp. B: frozen encoder per patch -> [B, Gh, Gw, D] -> LinearHead."""
  model = Classifier(encoder, LinearHead(num_classes, name="linear_head"), "pooled", grid,
                     name="linear_classifier")
  return build(model, (grid.grid_size, grid.grid_size, grid.patch_size, grid.patch_size, 3))


def efficient_classifier(encoder: keras.Model, config: ClassifierConfig, num_classes: int,
                         dropout: float, image_size: int) -> Classifier:
  """supp. C.2: encoder on the whole image -> last stack grid -> ResNetHead."""
  head = ResNetHead(config, num_classes, dropout, name="resnet_head")
  model = Classifier(encoder, head, last_stack(encoder), name="efficient_classifier")
  return build(model, (image_size, image_size, 3))


def supervised_classifier(encoder: keras.Model, num_classes: int, dropout: float,
                          image_size: int) -> Classifier:
  """supp. C.1: a ResNet-v2 from pixels -> pooled -> dropout -> linear."""
  model = Classifier(encoder, DropoutLinear(num_classes, dropout, name="dropout_linear"),
                     "pooled", name="supervised_classifier")
  return build(model, (image_size, image_size, 3))
