"""Analytic step FLOPs against TensorFlow's own per-op cost statistics."""

import collections

import pytest
import tensorflow as tf
# TensorFlow's registered cost statistics (the numbers tf.compat.v1.profiler
# sums): an independent count, from the traced graph's actual shapes.
from tensorflow.python.framework import ops as tf_ops

from cpc_tf import configs
from cpc_tf import flops
from cpc_tf.model import build_model

COUNTED = ("Conv2D", "MatMul")


def _graph(config, batch, train):
  model = build_model(config.model)
  g = config.model.grid
  spec = tf.TensorSpec([batch, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3])

  @tf.function
  def forward(x):
    return model(x, training=True)["loss"]

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = model(x, training=True)["loss"]
    return tape.gradient(loss, model.trainable_variables)

  return (step if train else forward).get_concrete_function(spec).graph


def _tf_flops(graph, types=COUNTED):
  total = 0.0
  for op in graph.get_operations():
    if op.type in types:
      total += tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value
  return total


@pytest.mark.parametrize("preset,batch", [("tiny", 2), ("tiny", 3), ("fashion_mnist_small", 2)])
def test_forward_flops_equal_tensorflows_count(preset, batch):
  config = configs.preset(preset)
  cost = flops.step_cost(config.model, batch)
  # Integer-valued FLOPs well below 2**53: exact in float64.
  assert cost.forward == _tf_flops(_graph(config, batch, train=False))


def test_every_part_is_counted():
  """Remove a part from the model and the count drops by exactly that part."""
  config = configs.tiny()
  one_dir = configs.replace(config, **{"model.head.directions": ("down",)})
  full = flops.step_cost(config.model, 2)
  single = flops.step_cost(one_dir.model, 2)
  assert single.encoder_forward == full.encoder_forward
  n = len(config.model.head.directions)
  for part in ("context_forward", "proj_forward", "infonce_forward"):
    assert getattr(full, part) == pytest.approx(n * getattr(single, part))
  assert single.forward == _tf_flops(_graph(one_dir, 2, train=False))


def test_backward_has_two_convolutions_per_forward_one():
  """The 3x rule: each conv gets an input- and a filter-gradient conv, each matmul two matmuls."""
  config = configs.tiny()
  forward = collections.Counter(op.type for op in _graph(config, 2, train=False).get_operations())
  counts = collections.Counter(op.type for op in _graph(config, 2, train=True).get_operations())
  assert counts["Conv2DBackpropFilter"] == counts["Conv2D"] == forward["Conv2D"]
  assert counts["Conv2DBackpropInput"] == counts["Conv2D"]
  # MatMuls: the InfoNCE logits (2 offsets per direction) and every 1x1 convolution
  # (cpc_tf/pointwise.py): 3 per encoder block, and per direction the context's
  # in / out per block, the targets and one prediction per offset.
  head = config.model.head
  pointwise = 3 * 3 + len(head.directions) * (2 * head.context.num_blocks + 1 + 2)
  assert forward["MatMul"] == len(head.directions) * 2 + pointwise
  # Each layer norm's gradient adds four matmuls with a vector (cpc_tf/layer_norm.py:
  # means over C, sums over rows), elementwise-sized work the analytic count leaves out
  # with the norms' other elementwise ops.
  norms = forward["Rsqrt"]
  assert norms == 3 * 3 + 1  # three per block, one final
  assert counts["MatMul"] == 3 * forward["MatMul"] + 4 * norms
  cost = flops.step_cost(config.model, 2)
  assert cost.train == pytest.approx(3 * cost.forward - cost.stem_forward)


def test_infonce_is_quadratic_in_the_scored_batch():
  model = configs.fashion_mnist_small().model
  a = flops.step_cost(model, 4, scored_images=4)
  b = flops.step_cost(model, 4, scored_images=8)
  assert b.infonce_forward == pytest.approx(2 * a.infonce_forward)
  assert b.encoder_forward == a.encoder_forward


def test_paper_figures():
  """The recorded figures: encoder convs per fashion_mnist_small step (10.4 GFLOP with
  the two-block `small` encoder of benchmarks/pretrain_bench.md, 6.4 with `compact`),
  ~4e20 per paper run."""
  compact = configs.fashion_mnist_small()
  small = configs.replace(compact, **{"model.encoder.name": "small"})
  assert flops.pretrain_cost(small).table()["encoder"] == pytest.approx(10.35e9, rel=0.01)
  assert flops.pretrain_cost(compact).table()["encoder"] == pytest.approx(6.42e9, rel=0.01)
  paper = configs.cpc_v2_paper()
  steps = 1_281_167 * paper.epochs / paper.batch_size  # supp. A: 200 ImageNet epochs
  total = flops.pretrain_cost(paper, num_replicas=32).train * 32 * steps
  assert 3e20 < total < 6e20


def test_weight_count_matches_the_built_model():
  config = configs.fashion_mnist_small()
  model = build_model(config.model)
  assert flops.weight_count(config.model) == sum(
      int(v.shape.num_elements()) for v in model.trainable_variables)


def test_remat_costs_one_more_forward_of_the_stacks_and_saves_memory():
  model = configs.fashion_mnist_small().model
  off = flops.step_cost(model, 2, remat=False)
  on = flops.step_cost(model, 2, remat=True)
  # The stacks run forward twice; the stem (outside every stack) once.
  assert on.train - off.train == pytest.approx(off.encoder_forward - off.stem_forward)
  assert on.activation_bytes_per_image < off.activation_bytes_per_image


def test_largest_batch_grows_with_memory():
  model = configs.cpc_v2_paper().model
  sizes = [flops.largest_batch(model, gib * 2 ** 30) for gib in (16, 40, 80)]
  assert sizes == sorted(sizes) and sizes[-1] > sizes[0] >= 1


def test_bad_batch_is_refused():
  with pytest.raises(ValueError, match="at least one image"):
    flops.step_cost(configs.tiny().model, 0)


@pytest.mark.slow
def test_weight_count_matches_the_paper_model():
  """The state-memory figure for cpc_v2_paper rests on this count (built, not trained)."""
  model = configs.cpc_v2_paper().model
  assert flops.weight_count(model) == sum(
      int(v.shape.num_elements()) for v in build_model(model).trainable_variables)
