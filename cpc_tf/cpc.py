"""CPC head: directions, target / prediction projections and the InfoNCE loss.

Glossary: B images (per replica), B' images whose targets are scored (B' = B,
or the global batch when negatives are gathered across replicas), H grid rows
in the prediction direction, W grid columns, D latent depth, T target depth,
i an offset index (a context row r predicts the latent at row r + i + 1).

Each direction rotates the latent grid so that it predicts "down", as in the
pseudocode, and owns its context network, target projection and one
prediction 1x1 conv per offset (ICLR A.2, supp. A).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from cpc_tf.configs import HeadConfig
from cpc_tf.context import PixelCNN
from cpc_tf.pointwise import PointwiseConv2D

# Counter-clockwise quarter turns that make each direction read top-to-bottom:
# "right" (left-to-right) turns the grid clockwise so column 0 becomes row 0.
ROTATIONS = {"down": 0, "up": 2, "right": 3, "left": 1}


def rotate(grid: tf.Tensor, direction: str) -> tf.Tensor:
  """[B, Gh, Gw, D] -> grid read in `direction` order (rows = prediction axis)."""
  return tf.image.rot90(grid, ROTATIONS[direction])


def unrotate(grid: tf.Tensor, direction: str) -> tf.Tensor:
  """Inverse of `rotate`."""
  return tf.image.rot90(grid, (4 - ROTATIONS[direction]) % 4)


def gather_targets(targets: tf.Tensor, cross_replica: bool):
  """Targets every replica scores against, and where this replica's start.

  targets: [B, H, W, T] of this replica. Returns ([B', H, W, T], first index of
  this replica's targets in the flattened [B' * H * W] list). Under a
  tf.distribute strategy with several replicas and `cross_replica`, the targets
  of the whole global batch are gathered (the gradient flows back to every
  replica), so the loss does not depend on the number of replicas.
  """
  ctx = tf.distribute.get_replica_context()
  if not cross_replica or ctx is None or ctx.num_replicas_in_sync == 1:
    return targets, 0
  gathered = ctx.all_gather(targets, axis=0)
  per_replica = tf.size(targets) // tf.shape(targets)[-1]
  return gathered, tf.cast(ctx.replica_id_in_sync_group, tf.int32) * per_replica


def info_nce(preds: tf.Tensor, targets: tf.Tensor, step: int, label_offset=0):
  """InfoNCE for one offset, exactly as the pseudocode builds logits and labels.

  preds: [B, H - step - 1, W, T], already sliced and scaled by emb_scale.
  targets: [B', H, W, T]. Returns (mean cross-entropy, top-1 accuracy), float32.
  """
  t = preds.shape[-1]
  rows_i, cols = tf.shape(preds)[1], tf.shape(preds)[2]
  rows = rows_i + step + 1
  preds = tf.cast(tf.reshape(preds, [-1, t]), tf.float32)  # loss in float32
  targets = tf.cast(tf.reshape(targets, [-1, t]), tf.float32)
  logits = tf.matmul(preds, targets, transpose_b=True)  # [B*(H-i-1)*W, B'*H*W]
  n = tf.range(tf.shape(preds)[0])
  b = n // (rows_i * cols)
  col = n % (rows_i * cols)
  labels = label_offset + b * rows * cols + (step + 1) * cols + col
  loss = tf.reduce_mean(
      tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits))
  hits = tf.equal(tf.argmax(logits, axis=-1, output_type=tf.int32), labels)
  return loss, tf.reduce_mean(tf.cast(hits, tf.float32))


class DirectionHead(keras.layers.Layer):
  """One prediction direction: context network, target and prediction projections."""

  def __init__(self, config: HeadConfig, direction: str, **kwargs):
    super().__init__(name=f"cpc_{direction}", **kwargs)
    self.config = config
    self.direction = direction
    self.steps = tuple(range(config.steps_to_ignore, config.steps_to_predict))

  def build(self, latent_shape):
    # Weights in the pseudocode's order: pixelCNN, targets, one prediction per offset.
    self.context = PixelCNN(self.config.context, name="context")
    self.context.build(latent_shape)
    self.target_proj = PointwiseConv2D(self.config.target_dim, name="targets")
    self.target_proj.build(latent_shape)
    for i in self.steps:  # named attributes: tf.train.Checkpoint skips list-held layers
      layer = PointwiseConv2D(self.config.target_dim, name=f"preds_{i}")
      layer.build(latent_shape)
      setattr(self, layer.name, layer)

  @property
  def pred_projs(self):
    """One prediction 1x1 conv per offset, in offset order."""
    return [getattr(self, f"preds_{i}") for i in self.steps]

  def call(self, latents, cross_replica_negatives: bool = True):
    """latents: [B, H, W, D], already rotated. Returns (loss, mean accuracy)."""
    rows = latents.shape[1]
    context = self.context(latents)
    targets = self.target_proj(latents)  # shared by all offsets of this direction
    all_targets, offset = gather_targets(targets, cross_replica_negatives)
    loss, accuracy = 0.0, 0.0
    for i, proj in zip(self.steps, self.pred_projs):
      preds = proj(context)[:, :rows - i - 1] * self.config.emb_scale
      loss_i, acc_i = info_nce(preds, all_targets, i, offset)
      loss += loss_i
      accuracy += acc_i / len(self.steps)
    return loss, accuracy


class CPCHead(keras.layers.Layer):
  """[B, Gh, Gw, D] latent grid -> {"loss", "loss/<dir>", "accuracy/<dir>"}.

  The total loss sums, over directions and offsets, the mean InfoNCE of each.
  """

  def __init__(self, config: HeadConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    for d in config.directions:  # named attributes: checkpoints skip list-held layers
      setattr(self, d, DirectionHead(config, d))

  @property
  def heads(self):
    """The DirectionHead of every direction, in config order."""
    return [getattr(self, d) for d in self.config.directions]

  def build(self, latent_shape):
    for head in self.heads:
      head.build(tuple(rotate(tf.zeros([1, *latent_shape[1:]]), head.direction).shape))

  def call(self, latents, cross_replica_negatives: bool = True):
    check_grid(latents.shape, self.config)
    out = {}
    total = 0.0
    for head in self.heads:
      loss, acc = head(rotate(latents, head.direction),
                       cross_replica_negatives=cross_replica_negatives)
      out[f"loss/{head.direction}"] = loss
      out[f"accuracy/{head.direction}"] = acc
      total += loss
    out["loss"] = total
    return out

  def context_grid(self, latents, direction: str):
    """Context vectors of one direction, in the original grid orientation."""
    head = self.heads[self.config.directions.index(direction)]
    return unrotate(head.context(rotate(latents, direction)), direction)


def check_grid(shape, config: HeadConfig) -> None:
  """Raises if a [B, Gh, Gw, D] grid is not static or too small for the offsets."""
  if len(shape) != 4 or None in tuple(shape[1:]):
    raise ValueError(f"The CPC head needs a [B, Gh, Gw, D] latent grid with static "
                     f"Gh, Gw, D; got shape {tuple(shape)}.")
  for direction in config.directions:
    rows = shape[1] if direction in ("down", "up") else shape[2]
    if rows < config.min_grid_rows:
      raise ValueError(
          f"Grid {shape[1]}x{shape[2]} is too small to predict {direction!r} with "
          f"steps_to_predict={config.steps_to_predict}: need at least "
          f"{config.min_grid_rows} patches along that axis. Lower steps_to_predict "
          "or use a larger image / smaller stride.")
