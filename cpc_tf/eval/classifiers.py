"""Classification heads and the encoder + head model of every protocol.

Glossary: B batch, Gh/Gw patch grid, P patch size, S image side, h/w a feature
grid, D encoder feature depth, K classes.

  LinearHead     [B, Gh, Gw, D] -> BN without scale -> 1x1 conv -> mean -> [B, K]  (supp. B)
  PooledLinear   [B, D] grid means -> the same LinearHead (cached features)
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

  def __init__(self, num_classes: int, bn_momentum: float = 0.99, **kwargs):
    super().__init__(**kwargs)
    self.num_classes = num_classes
    # supp. B: "omitting the scale parameter"; a scale in front of a linear map is redundant.
    self.norm = keras.layers.BatchNormalization(scale=False, momentum=bn_momentum, name="bn")
    self.conv = keras.layers.Conv2D(num_classes, 1, name="logits")

  def call(self, grid, training=False):
    """[B, Gh, Gw, D] -> [B, K]."""
    if grid.shape.rank != 4:
      raise ValueError(f"LinearHead expects a feature grid [B, Gh, Gw, D], got {grid.shape}.")
    logits = self.conv(self.norm(grid, training=training))
    return tf.reduce_mean(logits, axis=[1, 2])  # supp. B: mean-pool the logits


class ResNetHead(keras.layers.Layer):
  """supp. C.2: an 11-block ResNet (4096 maps, 1024 bottleneck), mean pool, dropout, linear.

  The blocks come from the encoder's builder (`cpc_tf.resnet.Builder`) with
  zero padding and epsilon 1e-3 (Keras' default): the head's values before
  the builders were merged, kept so results stay the same; supp. C.2 states
  neither. The trunk is built on the first call, when D is known.
  """

  def __init__(self, config: ClassifierConfig, num_classes: int, dropout: float, **kwargs):
    super().__init__(**kwargs)
    if config.blocks < 1:
      raise ValueError(f"ClassifierConfig.blocks={config.blocks}: need at least 1 block.")
    self.config = config
    self.dropout = keras.layers.Dropout(dropout, name="dropout")
    self.dense = keras.layers.Dense(num_classes, name="logits")

  def build(self, input_shape):
    c = self.config
    b = resnet.Builder(c.norm, symmetric=False, epsilon=1e-3, bn_momentum=c.bn_momentum)
    x = grid = keras.Input(shape=(None, None, input_shape[-1]), name="grid")
    for i in range(c.blocks):
      # A projection shortcut in the first block: D -> width.
      x = b.block(x, c.width, c.bottleneck, 1, project=i == 0, name=f"block{i + 1}")
    self.trunk = keras.Model(grid, b.norm_act(x, "final"), name="trunk")

  def call(self, grid, training=False):
    """[B, h, w, D] -> [B, K]."""
    if grid.shape.rank != 4:
      raise ValueError(f"ResNetHead expects a feature grid [B, h, w, D], got {grid.shape}.")
    x = tf.reduce_mean(self.trunk(grid, training=training), axis=[1, 2])
    # supp. C.2: dropout after the final mean pooling, before the linear classifier.
    return self.dense(self.dropout(x, training=training))


class PooledLinear(keras.Model):
  """The supp. B LinearHead on grid means: [B, D] -> [B, K].

  A 1x1 convolution and the spatial mean commute, so LinearHead(grid) is a
  linear map of mean(grid); this model trains the same head on cached means
  (`cpc_tf.eval.linear`, cache_features). Its batch norm then takes its
  statistics over the means rather than over every position: the function
  class is the same, the training-time normalisation is not.
  """

  def __init__(self, head: LinearHead, **kwargs):
    super().__init__(**kwargs)
    self.head = head

  def call(self, pooled, training=False, train_encoder=False):
    if pooled.shape.rank != 2:
      raise ValueError(f"PooledLinear expects grid means [B, D], got {pooled.shape}.")
    return self.head(pooled[:, None, None, :], training=training)


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


def seed_initialisers(seed: int) -> None:
  """Seeds the initial weights and dropout streams of the layers built next.

  Keras draws unseeded initialisers and dropout seeds from Python / NumPy /
  TF global state; setting all three (the public `keras.utils.set_random_seed`)
  before a model is built makes a rerun with the same seed start from the same
  weights, hence end at the same accuracy (issue 9).
  """
  keras.utils.set_random_seed(int(seed))


def build(model: Classifier, input_shape) -> Classifier:
  """Creates every variable by calling the model on zeros of `input_shape` (batch 2)."""
  model(tf.zeros([2, *input_shape]), training=False)
  return model


def linear_classifier(encoder: keras.Model, grid: GridConfig, num_classes: int,
                      bn_momentum: float = 0.99) -> Classifier:
  """supp. B: frozen encoder per patch -> [B, Gh, Gw, D] -> LinearHead."""
  head = LinearHead(num_classes, bn_momentum, name="linear_head")
  model = Classifier(encoder, head, "pooled", grid, name="linear_classifier")
  return build(model, (grid.grid_size, grid.grid_size, grid.patch_size, grid.patch_size, 3))


def efficient_classifier(encoder: keras.Model, config: ClassifierConfig, num_classes: int,
                         dropout: float, image_size: int) -> Classifier:
  """supp. C.2: encoder on the whole image -> last stack grid -> ResNetHead."""
  head = ResNetHead(config, num_classes, dropout, name="resnet_head")
  model = Classifier(encoder, head, resnet.last_stack(encoder.output), name="efficient_classifier")
  return build(model, (image_size, image_size, 3))


def supervised_classifier(encoder: keras.Model, num_classes: int, dropout: float,
                          image_size: int) -> Classifier:
  """supp. C.1: a ResNet-v2 from pixels -> pooled -> dropout -> linear."""
  model = Classifier(encoder, DropoutLinear(num_classes, dropout, name="dropout_linear"),
                     "pooled", name="supervised_classifier")
  return build(model, (image_size, image_size, 3))
