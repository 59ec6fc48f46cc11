"""Analytic cost of a pre-training step, computed from the config alone.

Glossary: B images per replica, B' images whose targets are scored (the global
batch with cross-replica negatives, else B), G = Gh = Gw grid side, P patch
size, D latent depth, F context hidden width, T target depth, h/w the size of
a feature map inside the encoder.

FLOPs count multiply-adds as 2, in the convolutions and matmuls only:
  encoder   every convolution of the ResNet-v2 (`cpc_tf.resnet.SPECS`), per patch
  context   the masked PixelCNN of every direction (ICLR A.2)
  proj      target and per-offset prediction 1x1 convs of every direction
  infonce   the logits matmul of every direction and offset (quadratic in B')
Layer norm, ReLU, pads, adds, softmax and the optimizer are not counted: on
this model they are a few percent of the total (memory-bound, not FLOP-bound).
A training step is forward + backward; the backward pass of a conv or matmul
costs twice its forward (gradient w.r.t. input and w.r.t. weights), except for
the stem conv whose input (the pixels) needs no gradient. With
`EncoderConfig.remat` every residual stack runs its forward twice.

Activation memory is the sum of the encoder's intermediate tensors (conv,
norm, ReLU, pad and add outputs, the tensors TensorFlow keeps for the backward
pass) per image, an upper bound on what backpropagation holds at its peak; the
head's tensors are added (context network, projections, logits rows).
"""

from __future__ import annotations

import dataclasses
import math

from cpc_tf import resnet
from cpc_tf.configs import ModelConfig, PretrainConfig


@dataclasses.dataclass(frozen=True)
class StepCost:
  """FLOPs of one pre-training step on one replica, by part; and memory per image."""

  encoder_forward: float
  context_forward: float
  proj_forward: float
  infonce_forward: float
  stem_forward: float  # part of encoder_forward; its input gradient is skipped
  remat_forward: float  # extra forward FLOPs when stacks are recomputed (0 when off)
  activation_bytes_per_image: float  # encoder + head tensors kept for backward
  images: int  # B, images per replica

  @property
  def forward(self) -> float:
    return (self.encoder_forward + self.context_forward + self.proj_forward
            + self.infonce_forward)

  @property
  def train(self) -> float:
    """Forward + backward (+ recomputation) FLOPs of one training step."""
    return 3 * self.forward - self.stem_forward + self.remat_forward

  def table(self) -> dict[str, float]:
    """Training FLOPs per part (forward + backward), for printing."""
    return {"encoder": 3 * self.encoder_forward - self.stem_forward + self.remat_forward,
            "context": 3 * self.context_forward,
            "projections": 3 * self.proj_forward,
            "infonce": 3 * self.infonce_forward}


def _out(size: int, stride: int) -> int:
  # Every conv pads kernel - 1 pixels and runs VALID (resnet._Builder.conv), and
  # the stem pool pads 1 + 1: the output side is ceil(size / stride) in all cases.
  return -(-size // stride)


@dataclasses.dataclass(frozen=True)
class EncoderCost:
  """One input of size x size through an encoder: FLOPs and activation elements."""

  forward: float  # all convolutions
  stem: float  # the stem conv's part of `forward`
  stacks: tuple[float, ...]  # forward FLOPs per residual stack
  stem_activations: float  # elements before the first stack (pixels, stem)
  stack_activations: tuple[float, ...]  # elements inside each stack (incl. its output)
  final_activations: float  # final norm + ReLU
  stack_outputs: tuple[float, ...]  # elements of each stack's output

  def activations(self, remat: bool) -> float:
    """Elements held for the backward pass at its peak.

    With remat only the stacks' inputs are kept during the forward pass; the
    backward pass then rebuilds one stack at a time, so the peak holds the
    largest stack's internals on top of them.
    """
    if not remat:
      return self.stem_activations + sum(self.stack_activations) + self.final_activations
    return (self.stem_activations + max(self.stack_activations)
            + self.final_activations + sum(self.stack_outputs))



def encoder_cost(name: str, size: int) -> EncoderCost:
  """FLOPs and activation elements of one size x size input through encoder `name`."""
  s = resnet.spec(name)
  h = _out(size, s.stem_stride)
  stem = 2.0 * s.stem_kernel ** 2 * 3 * s.stem_dim * h * h
  # Pixels, pixels rescaled, stem pad, stem conv output.
  stem_acts = 3.0 * size * size * 2 + (size + s.stem_kernel - 1) ** 2 * 3 + h * h * s.stem_dim
  if s.stem_pool:
    stem_acts += (h + 2) ** 2 * s.stem_dim  # pool pad
    h = _out(h, 2)
    stem_acts += h * h * s.stem_dim
  c = s.stem_dim
  norm_act = 3  # conv output kept by the norm, norm output, ReLU output
  stacks, stack_acts, outputs = [], [], []
  for st in s.stacks:
    flops, acts = 0.0, 0.0
    for j in range(st.blocks):
      stride = st.stride if j == 0 else 1
      ho = _out(h, stride)
      hw_in, hw_out = h * h, ho * ho
      flops += 2.0 * hw_in * c * st.bottleneck  # conv1 (1x1) at the input size
      flops += 2.0 * 9 * hw_out * st.bottleneck ** 2  # conv2 (3x3, carries the stride)
      flops += 2.0 * hw_out * st.bottleneck * st.out_dim  # conv3 (1x1)
      if j == 0:
        flops += 2.0 * hw_out * c * st.out_dim  # projection shortcut (1x1, strided)
        acts += hw_out * st.out_dim
      acts += (norm_act - 1) * hw_in * c  # preact norm + ReLU (its input is counted)
      acts += hw_in * st.bottleneck * norm_act  # conv1 output, norm, ReLU
      acts += (h + 2) ** 2 * st.bottleneck  # conv2 pad
      acts += hw_out * st.bottleneck * norm_act  # conv2 output, norm, ReLU
      acts += 2 * hw_out * st.out_dim  # conv3 output, add output
      h, c = ho, st.out_dim
    stacks.append(flops)
    stack_acts.append(acts)
    outputs.append(float(h * h * c))
  return EncoderCost(forward=stem + sum(stacks), stem=stem, stacks=tuple(stacks),
                     stem_activations=stem_acts, stack_activations=tuple(stack_acts),
                     final_activations=(norm_act - 1) * h * h * c,
                     stack_outputs=tuple(outputs))


def step_cost(model: ModelConfig, images: int, scored_images: int | None = None,
              remat: bool | None = None, bytes_per_element: int = 4) -> StepCost:
  """FLOPs and activation memory of one step on `images` images per replica.

  scored_images: B', the images whose targets every prediction is scored
  against (global batch with cross-replica negatives); defaults to `images`.
  remat: defaults to model.encoder.remat.
  """
  if images <= 0:
    raise ValueError(f"images={images}: need at least one image per replica.")
  scored = images if scored_images is None else scored_images
  remat = model.encoder.remat if remat is None else remat
  g = model.grid.grid_size
  patches = images * g * g
  enc = encoder_cost(model.encoder.name, model.grid.patch_size)
  d = resnet.feature_dim(model.encoder)
  head = model.head
  f, t = head.context.hidden_dim, head.target_dim
  n_dir = len(head.directions)
  offsets = range(head.steps_to_ignore, head.steps_to_predict)
  cells = images * g * g  # latent grid positions
  # Per block: 1x1 D->F, 1x3 F->F, 2x1 F->F, 1x1 F->D (context.py).
  context = n_dir * head.context.num_blocks * 2.0 * cells * (d * f + 3 * f * f + 2 * f * f + f * d)
  proj = n_dir * (1 + len(offsets)) * 2.0 * cells * d * t
  # Logits [B (G - i - 1) G, B' G G] per offset (cpc.info_nce).
  infonce = n_dir * sum(2.0 * images * (g - i - 1) * g * scored * g * g * t for i in offsets)
  # Per image: rotated latents, context blocks (4 F-wide maps + residual), target
  # and prediction maps, and the logits with their softmax.
  head_acts = n_dir * g * g * (d + head.context.num_blocks * (4 * f + d)
                               + (1 + len(offsets)) * t)
  head_acts += n_dir * sum(2.0 * (g - i - 1) * g * scored * g * g for i in offsets)
  act_bytes = (enc.activations(remat) * g * g + head_acts) * bytes_per_element
  return StepCost(
      encoder_forward=enc.forward * patches, context_forward=context, proj_forward=proj,
      infonce_forward=infonce, stem_forward=enc.stem * patches,
      remat_forward=sum(enc.stacks) * patches if remat else 0.0,
      activation_bytes_per_image=act_bytes, images=images)


def pretrain_cost(config: PretrainConfig, num_replicas: int = 1) -> StepCost:
  """Per-replica cost of one step of `config` split over `num_replicas`."""
  per_replica = config.batch_size // num_replicas
  scored = config.batch_size if config.cross_replica_negatives else per_replica
  return step_cost(config.model, per_replica, scored)


def weight_count(model: ModelConfig) -> int:
  """Trainable parameters of the CPC model (encoder kernels, norms, head), analytically."""
  s = resnet.spec(model.encoder.name)
  bias = model.encoder.norm == "none"
  norm = {"layer": 2, "batch": 2, "none": 0}[model.encoder.norm]
  n = s.stem_kernel ** 2 * 3 * s.stem_dim + (s.stem_dim if bias else 0)
  c = s.stem_dim
  for st in s.stacks:
    for j in range(st.blocks):
      convs = [(1, c, st.bottleneck), (3, st.bottleneck, st.bottleneck),
               (1, st.bottleneck, st.out_dim)]
      if j == 0:
        convs.append((1, c, st.out_dim))
      n += sum(k * k * i * o + (o if bias else 0) for k, i, o in convs)
      n += norm * (c + 2 * st.bottleneck)  # preact, after conv1, after conv2
      c = st.out_dim
  n += norm * c  # final norm
  d, head = c, model.head
  f, t = head.context.hidden_dim, head.target_dim
  per_block = (d * f + f) + (3 * f * f + f) + (2 * f * f + f) + (f * d + d)
  per_dir = head.context.num_blocks * per_block + (1 + head.steps_to_predict
                                                  - head.steps_to_ignore) * (d * t + t)
  return n + len(head.directions) * per_dir


def state_bytes(model: ModelConfig, bytes_per_weight: int = 4) -> int:
  """Bytes of the training state: weights, Polyak average, gradient, Adam's 2 slots."""
  return 5 * weight_count(model) * bytes_per_weight


def largest_batch(model: ModelConfig, memory_bytes: float, fraction: float = 0.9) -> int:
  """Largest per-replica batch whose state + activations fit `fraction` of memory.

  Scored images are taken equal to the per-replica batch (the logits rows grow
  with the global batch under cross-replica negatives; small next to the encoder).
  """
  budget = fraction * memory_bytes - state_bytes(model)
  per_image = step_cost(model, 1).activation_bytes_per_image
  return max(0, math.floor(budget / per_image))
