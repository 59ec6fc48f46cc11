"""The masked PixelCNN: layer structure and causality in every direction."""

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import cpc
from cpc_tf.configs import ContextConfig, HeadConfig
from cpc_tf.context import PixelCNN


def test_paper_structure():
  net = PixelCNN(ContextConfig())  # 5 blocks, 256 hidden (ICLR A.2)
  out = net(tf.zeros([2, 6, 6, 48]))
  assert out.shape == (2, 6, 6, 48)
  assert len(net.blocks) == 5
  shapes = [tuple(layer.kernel.shape) for layer in net.blocks[0]]
  assert shapes == [(1, 1, 48, 256), (1, 3, 256, 256), (2, 1, 256, 256), (1, 1, 256, 48)]
  assert [layer.padding for layer in net.blocks[0]] == ["valid", "same", "valid", "valid"]


def test_output_is_relu():
  out = PixelCNN(ContextConfig(2, 8))(tf.random.stateless_normal([2, 4, 4, 6], seed=[0, 1]))
  assert float(tf.reduce_min(out)) >= 0.0


@pytest.mark.parametrize("direction", ["down", "up", "right", "left"])
def test_causality(direction):
  """Changing latent row r (in the direction's order) leaves context rows < r
  unchanged and changes every context row from r on."""
  head = cpc.CPCHead(HeadConfig(directions=(direction,), steps_to_ignore=0,
                                steps_to_predict=1, context=ContextConfig(5, 16)))
  gh, gw = 6, 5
  latents = tf.random.stateless_normal([2, gh, gw, 8], seed=[2, 3]) + 1.0
  head(latents)
  base = head.context_grid(latents, direction).numpy()
  # Index of grid rows/columns in the direction's reading order.
  axis = 1 if direction in ("down", "up") else 2
  size = latents.shape[axis]
  order = list(range(size)) if direction in ("down", "right") else list(range(size))[::-1]
  for pos, r in enumerate(order):
    bump = np.zeros(latents.shape, np.float32)
    index = [slice(None)] * 4
    index[axis] = r
    bump[tuple(index)] = 3.0
    changed = head.context_grid(latents + bump, direction).numpy()
    diff = np.abs(changed - base).max(axis=tuple(a for a in range(4) if a != axis))
    before = [order[q] for q in range(pos)]
    after = [order[q] for q in range(pos, size)]
    assert np.all(diff[before] == 0.0), (direction, r, diff)
    assert np.all(diff[after] > 0.0), (direction, r, diff)
