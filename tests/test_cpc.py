"""The InfoNCE head against an independent NumPy transcription of ICLR A.2."""

import math

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import cpc
from cpc_tf.configs import ContextConfig, HeadConfig


def np_conv(x, kernel, bias, pad_same_w=False):
  """Cross-correlation, VALID, of x [B, H, W, C] with kernel [kh, kw, C, F]."""
  kh, kw = kernel.shape[:2]
  if pad_same_w:
    x = np.pad(x, [(0, 0), (0, 0), ((kw - 1) // 2, kw // 2), (0, 0)])
  b, h, w, _ = x.shape
  out = np.zeros([b, h - kh + 1, w - kw + 1, kernel.shape[-1]])
  for dy in range(kh):
    for dx in range(kw):
      out += np.einsum("bhwc,cf->bhwf", x[:, dy:dy + h - kh + 1, dx:dx + w - kw + 1],
                       kernel[dy, dx])
  return out + bias


def np_pixel_cnn(latents, weights):
  """weights: per block [(k, b) for 1x1, 1x3, 2x1, 1x1] in pseudocode order."""
  cres = latents
  for (k1, b1), (k2, b2), (k3, b3), (k4, b4) in weights:
    c = np.maximum(np_conv(cres, k1, b1), 0)
    c = np_conv(c, k2, b2, pad_same_w=True)
    c = np.pad(c, [[0, 0], [1, 0], [0, 0], [0, 0]])
    c = np.maximum(np_conv(c, k3, b3), 0)
    cres = cres + np_conv(c, k4, b4)
  return np.maximum(cres, 0)


def np_cpc(latents, context_weights, target_w, pred_ws, emb_scale, steps_to_ignore,
           steps_to_predict):
  """Transcription of the supp. A pseudocode; returns (loss, accuracies)."""
  loss, accs = 0.0, []
  context = np_pixel_cnn(latents, context_weights)
  targets = np_conv(latents, *target_w)
  target_dim = targets.shape[-1]
  batch_dim, col_dim, rows = targets.shape[:-1]
  targets = targets.reshape([-1, target_dim])
  for k, i in enumerate(range(steps_to_ignore, steps_to_predict)):
    col_dim_i = col_dim - i - 1
    total_elements = batch_dim * col_dim_i * rows
    preds_i = np_conv(context, *pred_ws[k])
    preds_i = preds_i[:, :-(i + 1), :, :] * emb_scale
    preds_i = preds_i.reshape([-1, target_dim])
    logits = preds_i @ targets.T
    b = np.arange(total_elements) // (col_dim_i * rows)
    col = np.arange(total_elements) % (col_dim_i * rows)
    labels = b * col_dim * rows + (i + 1) * rows + col
    logz = np.log(np.exp(logits - logits.max(1, keepdims=True)).sum(1)) + logits.max(1)
    loss += np.mean(logz - logits[np.arange(total_elements), labels])
    accs.append(np.mean(logits.argmax(1) == labels))
  return loss, np.mean(accs)


def _weights(head):
  kb = lambda layer: (layer.kernel.numpy().astype(np.float64),
                      layer.bias.numpy().astype(np.float64))
  ctx = [[kb(layer) for layer in block] for block in head.context.blocks]
  return ctx, kb(head.target_proj), [kb(p) for p in head.pred_projs]


@pytest.mark.parametrize("steps", [(2, 3), (1, 4), (0, 2)])
@pytest.mark.parametrize("direction", ["down", "up", "right", "left"])
def test_loss_matches_numpy_pseudocode(direction, steps):
  config = HeadConfig(target_dim=16, emb_scale=0.1, steps_to_ignore=steps[0],
                      steps_to_predict=steps[1], directions=(direction,),
                      context=ContextConfig(num_blocks=3, hidden_dim=24))
  head = cpc.CPCHead(config)
  latents = tf.random.stateless_normal([3, 6, 5, 20], seed=[1, 2])
  out = head(latents)
  rotated = cpc.rotate(latents, direction).numpy().astype(np.float64)
  ctx, tw, pws = _weights(head.heads[0])
  want_loss, want_acc = np_cpc(rotated, ctx, tw, pws, 0.1, *steps)
  np.testing.assert_allclose(float(out["loss"]), want_loss, rtol=1e-5)
  np.testing.assert_allclose(float(out[f"loss/{direction}"]), want_loss, rtol=1e-5)
  np.testing.assert_allclose(float(out[f"accuracy/{direction}"]), want_acc, atol=1e-6)


def test_weights_created_in_pseudocode_order():
  config = HeadConfig(target_dim=8, steps_to_ignore=1, steps_to_predict=3,
                      directions=("down", "up"), context=ContextConfig(2, 16))
  head = cpc.CPCHead(config)
  head.build((None, 5, 5, 12))
  names = [v.path.split("/", 1)[1] for v in head.weights]
  per_block = ["in", "row", "up", "out"]
  want = []
  for d in ("down", "up"):
    want += [f"cpc_{d}/context/block{k}_{n}/{w}" for k in range(2) for n in per_block
             for w in ("kernel", "bias")]
    want += [f"cpc_{d}/targets/{w}" for w in ("kernel", "bias")]
    want += [f"cpc_{d}/preds_{i}/{w}" for i in (1, 2) for w in ("kernel", "bias")]
  assert names == want
  shapes = {v.path.split("/", 1)[1]: tuple(v.shape) for v in head.weights}
  assert shapes["cpc_down/context/block0_row/kernel"] == (1, 3, 16, 16)
  assert shapes["cpc_down/context/block0_up/kernel"] == (2, 1, 16, 16)
  assert shapes["cpc_down/context/block1_out/kernel"] == (1, 1, 16, 12)
  assert shapes["cpc_down/targets/kernel"] == (1, 1, 12, 8)


def test_loss_at_init_is_log_number_of_targets():
  config = HeadConfig(target_dim=32, steps_to_ignore=2, steps_to_predict=4,
                      context=ContextConfig(1, 16))
  head = cpc.CPCHead(config)
  latents = tf.random.stateless_normal([4, 7, 7, 24], seed=[3, 4])
  head(latents)
  for v in head.weights:  # tiny random weights: every logit close to 0
    v.assign(v * 1e-3)
  out = head(latents)
  n_targets = 4 * 7 * 7
  per_term = math.log(n_targets)
  for d in config.directions:
    assert abs(float(out[f"loss/{d}"]) - 2 * per_term) < 1e-3 * per_term
  assert abs(float(out["loss"]) - 8 * per_term) < 1e-3 * 8 * per_term


def test_accuracy_counts_true_target_with_highest_logit():
  preds = np.zeros([1, 1, 2, 2], np.float32)  # B=1, H-i-1=1, W=2, T=2
  preds[0, 0, 0] = [1, 0]
  preds[0, 0, 1] = [1, 0]
  targets = np.zeros([1, 2, 2, 2], np.float32)  # step 0: row 1 is the truth
  targets[0, 1, 0] = [5, 0]  # true target of prediction 0: highest logit
  targets[0, 1, 1] = [1, 0]  # true target of prediction 1 loses to (1, 0)
  loss, acc = cpc.info_nce(tf.constant(preds), tf.constant(targets), step=0)
  assert float(acc) == 0.5
  logits = np.array([[0, 0, 5, 1], [0, 0, 5, 1]], np.float64)
  logz = np.log(np.exp(logits).sum(1))
  np.testing.assert_allclose(float(loss), np.mean(logz - logits[[0, 1], [2, 3]]), rtol=1e-6)


def test_label_offset_selects_this_replicas_targets():
  preds = tf.random.stateless_normal([2, 2, 3, 4], seed=[5, 6])
  mine = tf.random.stateless_normal([2, 4, 3, 4], seed=[7, 8])
  other = tf.random.stateless_normal([2, 4, 3, 4], seed=[9, 10])
  # As replica 1 of 2: its targets sit after replica 0's in the gathered list.
  loss_gathered, _ = cpc.info_nce(preds, tf.concat([other, mine], 0), 1, label_offset=24)
  logits_all = tf.matmul(tf.reshape(preds, [-1, 4]),
                         tf.reshape(tf.concat([other, mine], 0), [-1, 4]), transpose_b=True)
  n = tf.range(12)
  labels = 24 + (n // 6) * 12 + 2 * 3 + n % 6
  want = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits_all))
  np.testing.assert_allclose(float(loss_gathered), float(want), rtol=1e-6)


@pytest.mark.parametrize("direction,shape", [("down", [2, 3, 9, 4]), ("right", [2, 9, 3, 4])])
def test_grid_too_small_is_a_clear_error(direction, shape):
  head = cpc.CPCHead(HeadConfig(directions=(direction,), context=ContextConfig(1, 8)))
  with pytest.raises(ValueError, match="too small to predict"):
    head(tf.zeros(shape))


@pytest.mark.parametrize("direction", ["down", "up", "right", "left"])
def test_rotate_then_unrotate_is_identity(direction):
  x = tf.reshape(tf.range(2 * 3 * 4 * 1), [2, 3, 4, 1])
  np.testing.assert_array_equal(cpc.unrotate(cpc.rotate(x, direction), direction), x)


def test_rotations_read_in_the_named_order():
  x = tf.reshape(tf.range(9), [1, 3, 3, 1])  # x[r, c] = 3 r + c
  first_row = lambda d: cpc.rotate(x, d)[0, 0, :, 0].numpy().tolist()
  assert sorted(first_row("down")) == [0, 1, 2]  # top row first
  assert sorted(first_row("up")) == [6, 7, 8]  # bottom row first
  assert sorted(first_row("right")) == [0, 3, 6]  # left column first
  assert sorted(first_row("left")) == [2, 5, 8]  # right column first
