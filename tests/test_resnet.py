"""ResNet-v2 spec table: parameter counts, output shapes, norm and padding options."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import resnet
from cpc_tf.configs import EncoderConfig
from tolerances import assert_close_f32, f32_atol, network_terms


def test_resnet161_has_the_papers_size():
  """ICLR 4.1: stacks 1-3 of ResNet-101-v2, stack 3 grown to 46 blocks of 4096/512.

  3x(64,256) + 4x(128,512) + 46x(512,4096) bottlenecks, a 7x7x3x64 stem and a
  projection shortcut in the first block of each stack: 303,162,560 kernel
  weights. Built at paper size, not trained.
  """
  encoder = resnet.build_encoder(EncoderConfig(name="resnet161"))
  assert resnet.conv_kernel_count(encoder) == 303_162_560
  assert tuple(encoder.get_layer("stem_conv").kernel.shape) == (7, 7, 3, 64)
  projections = [l.name for l in encoder.layers if l.name.endswith("_proj")]
  assert projections == ["stack1_block1_proj", "stack2_block1_proj", "stack3_block1_proj"]
  out = encoder(tf.zeros([1, 80, 80, 3]))  # one supp. A patch -> one 4096-d vector
  assert out["pooled"].shape == (1, 4096)
  assert out["stack3"].shape == (1, 5, 5, 4096)


def test_resnet101_cpc_v1_size():
  encoder = resnet.build_encoder(EncoderConfig(name="resnet101_cpc_v1"))
  # stem + stacks 1-2 as in resnet161, stack 3: 23 x (256, 1024) blocks.
  stack3 = (512 * 1024 + 512 * 256 + 9 * 256 * 256 + 256 * 1024
            + 22 * (1024 * 256 + 9 * 256 * 256 + 256 * 1024))
  assert resnet.conv_kernel_count(encoder) == 9408 + 212_992 + 1_212_416 + stack3


# (name, depth of pooled, whole-image grid for 224 px, patch grid for 80 px)
PAPER = [("resnet161", 4096, 14, 5), ("resnet101_cpc_v1", 1024, 14, 5),
         ("resnet50_v2", 2048, 7, 3), ("resnet101_v2", 2048, 7, 3),
         ("resnet152_v2", 2048, 7, 3), ("resnet200_v2", 2048, 7, 3)]


@pytest.mark.parametrize("name,depth,grid224,grid80", PAPER)
def test_paper_size_output_shapes(name, depth, grid224, grid80):
  encoder = resnet.build_encoder(EncoderConfig(name=name))
  n_stacks = len(resnet.SPECS[name].stacks)
  assert set(encoder.output) == {"stem", "pooled"} | {f"stack{k}" for k in
                                                     range(1, n_stacks + 1)}
  spec = encoder.compute_output_spec(keras.KerasTensor((2, 224, 224, 3)))
  assert spec["stem"].shape == (2, 56, 56, 64)
  assert spec["stack1"].shape == (2, 56, 56, 256)
  assert spec[f"stack{n_stacks}"].shape == (2, grid224, grid224, depth)
  assert spec["pooled"].shape == (2, depth)
  patch = encoder.compute_output_spec(keras.KerasTensor((3, 80, 80, 3)))
  assert patch[f"stack{n_stacks}"].shape == (3, grid80, grid80, depth)


@pytest.mark.parametrize("name,depth", [("small", 256), ("tiny", 32)])
def test_small_configs_run(name, depth):
  encoder = resnet.build_encoder(EncoderConfig(name=name))
  out = encoder(tf.random.uniform([2, 16, 16, 3]))
  assert out["pooled"].shape == (2, depth)
  assert out["stack3"].shape == (2, 4, 4, depth)
  assert resnet.feature_dim(EncoderConfig(name=name)) == depth


@pytest.mark.parametrize("norm,layer_type", [("layer", keras.layers.LayerNormalization),
                                             ("batch", keras.layers.BatchNormalization)])
def test_norm_selection(norm, layer_type):
  encoder = resnet.build_encoder(EncoderConfig(name="tiny", norm=norm))
  norms = [l for l in encoder.layers if isinstance(l, (keras.layers.LayerNormalization,
                                                       keras.layers.BatchNormalization))]
  assert norms and all(isinstance(l, layer_type) for l in norms)
  convs = [l for l in encoder.layers if isinstance(l, keras.layers.Conv2D)]
  assert not any(l.use_bias for l in convs)  # a norm follows every conv


def test_no_norm_uses_conv_biases():
  encoder = resnet.build_encoder(EncoderConfig(name="tiny", norm="none"))
  assert not any("norm" in type(l).__name__.lower() for l in encoder.layers)
  assert all(l.use_bias for l in encoder.layers if isinstance(l, keras.layers.Conv2D))


def test_layer_norm_keeps_patches_independent():
  """ICLR 4.1: no statistic may mix patches; batch norm (training) does."""
  x = tf.random.stateless_uniform([4, 16, 16, 3], seed=[0, 1])
  y = tf.concat([x[:1], tf.random.stateless_uniform([3, 16, 16, 3], seed=[2, 3])], 0)
  for norm, independent in [("layer", True), ("layer_example", True), ("batch", False)]:
    encoder = resnet.build_encoder(EncoderConfig(name="tiny", norm=norm))
    a = encoder(x, training=True)["pooled"][0]
    b = encoder(y, training=True)["pooled"][0]
    # Other patches in the batch may change oneDNN's kernel choice: float32 rounding only.
    atol = f32_atol(a, *network_terms(encoder))
    assert np.allclose(a, b, rtol=0.0, atol=atol) == independent, norm


def _layer_norm_input():
  # 8 channels (the tiny stem); per-channel offsets and scales, so the two readings differ.
  x = np.random.default_rng(0).normal(size=(3, 4, 5, 8)).astype(np.float32)
  return x * np.arange(1, 9, dtype=np.float32) + np.arange(8, dtype=np.float32)


def test_example_layer_norm_uses_statistics_over_h_w_c():
  """SPEC 7, tf.contrib.layers.layer_norm's reading: one mean / variance per example."""
  x = _layer_norm_input()
  layer = resnet.ExampleLayerNorm(epsilon=1e-5)
  layer.build(x.shape)
  layer.gamma.assign(np.linspace(0.5, 2.0, 8))
  layer.beta.assign(np.linspace(-1.0, 1.0, 8))
  mean = x.mean(axis=(1, 2, 3), keepdims=True)
  var = x.var(axis=(1, 2, 3), keepdims=True)
  want = (x - mean) / np.sqrt(var + 1e-5) * np.linspace(0.5, 2.0, 8) + np.linspace(-1, 1, 8)
  # float32 moments of ~10-scale values: a few ulps of the unit-scale output.
  np.testing.assert_allclose(layer(x).numpy(), want, rtol=1e-5, atol=1e-5)
  assert [tuple(w.shape) for w in layer.weights] == [(8,), (8,)]  # params per channel


@pytest.mark.parametrize("norm,axes", [("layer", (3,)), ("layer_example", (1, 2, 3))])
def test_layer_norm_readings_in_the_encoder(norm, axes):
  """The encoder's first norm normalises over C per position, or over (H, W, C)."""
  encoder = resnet.build_encoder(EncoderConfig(name="tiny", norm=norm))
  layer = encoder.get_layer("stack1_block1_preact_ln")
  x = _layer_norm_input()
  y = layer(x).numpy()  # fresh layers: scale 1, offset 0
  want = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True)
                                                           + 1e-5)
  np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-4)


def test_symmetric_padding_is_on_by_default_and_mirrors():
  assert EncoderConfig().symmetric_padding
  x = tf.reshape(tf.range(1, 5, dtype=tf.float32), [1, 2, 2, 1])
  mirrored = resnet.Pad2D(1, 1, symmetric=True)(x)[0, :, :, 0].numpy()
  np.testing.assert_array_equal(mirrored[0], [1, 1, 2, 2])
  np.testing.assert_array_equal(resnet.Pad2D(1, 1, symmetric=False)(x)[0, 0, :, 0], 0)


def test_symmetric_padding_keeps_constant_images_constant():
  """Mirror padding adds no artificial border: a flat image gives flat features."""
  flat = tf.fill([1, 32, 32, 3], 0.3)
  for symmetric, flat_out in [(True, True), (False, False)]:
    encoder = resnet.build_encoder(EncoderConfig(name="tiny", symmetric_padding=symmetric))
    grid = encoder(flat)["stack3"].numpy()
    # Border and inner positions may take different vectorised code paths: float32 rounding.
    atol = f32_atol(grid, *network_terms(encoder))
    assert np.allclose(grid, grid[:, :1, :1], rtol=0.0, atol=atol) == flat_out


def test_unknown_encoder_is_a_clear_error():
  with pytest.raises(ValueError, match="Unknown encoder 'resnet999'"):
    resnet.build_encoder(EncoderConfig(name="resnet999"))


@pytest.mark.parametrize("norm", ["layer", "none"])
def test_remat_gives_the_same_outputs_and_gradients(norm):
  """EncoderConfig.remat recomputes each stack in the backward pass: same numbers."""
  plain = resnet.build_encoder(EncoderConfig(name="small", norm=norm))
  remat = resnet.build_encoder(EncoderConfig(name="small", norm=norm, remat=True))
  assert [l.name for l in resnet.conv_layers(remat)] == [
      l.name for l in resnet.conv_layers(plain)]
  assert resnet.conv_kernel_count(remat) == resnet.conv_kernel_count(plain)
  remat.set_weights(plain.get_weights())
  rng = np.random.default_rng(0)
  images = tf.constant(rng.uniform(size=(3, 16, 16, 3)), tf.float32)
  weights = tf.constant(rng.normal(size=(3, 256)), tf.float32)

  def gradients(encoder):
    @tf.function
    def run():
      with tf.GradientTape() as tape:
        out = encoder(images, training=True)
        loss = tf.reduce_sum(out["pooled"] * weights)
      return out["stack3"], tape.gradient(loss, encoder.trainable_variables)
    return run()

  (y0, g0), (y1, g1) = gradients(plain), gradients(remat)
  # The recomputed forward is the same graph, but oneDNN may fuse the two copies
  # differently: float32 tolerance relative to each tensor's scale.
  reduction, depth = network_terms(plain)
  assert_close_f32(y1, y0, reduction, depth)
  assert len(g0) == len(g1) == len(plain.trainable_variables)
  # A kernel's gradient sums over B * H * W positions; backward doubles the depth; a
  # gradient near zero by cancellation is noise at the scale of the largest one.
  positions = int(np.prod(images.shape[:3]))
  scale = max(float(tf.reduce_max(tf.abs(a))) for a in g0)
  for v, a, b in zip(plain.trainable_variables, g0, g1):
    assert_close_f32(b, a, max(reduction, positions), 2 * depth, err_msg=v.path, scale=scale)


def test_remat_recomputes_every_stack_in_the_backward_pass():
  """The step graph runs each stack's 3x3 convolutions twice, the stem's once.

  (1x1 convolutions run as MatMul, cpc_tf/pointwise.py, whose gradients are MatMuls too,
  so the Conv2D ops are the ones to count.)
  """
  counts = []
  for remat in (False, True):
    encoder = resnet.build_encoder(EncoderConfig(name="tiny", remat=remat))

    @tf.function
    def step(x, encoder=encoder):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(encoder(x, training=True)["pooled"])
      return tape.gradient(loss, encoder.trainable_variables)

    graph = step.get_concrete_function(tf.TensorSpec([2, 16, 16, 3])).graph.as_graph_def()
    nodes = list(graph.node) + [n for f in graph.library.function for n in f.node_def]
    counts.append(sum(n.op == "Conv2D" for n in nodes))
  convs = resnet.conv_layers(resnet.build_encoder(EncoderConfig(name="tiny")))
  stack_convs = sum(c.kernel_size != (1, 1) for c in convs) - 1  # all but the stem
  assert stack_convs == 3 and counts[1] == counts[0] + stack_convs


@pytest.mark.parametrize("config", [EncoderConfig(name="tiny"),
                                    EncoderConfig(name="tiny", norm="layer_example"),
                                    EncoderConfig(name="tiny", remat=True)])
def test_every_custom_layer_reloads_from_a_keras_file(tmp_path, config):
  """The export's encoder.keras: each custom layer registers and rebuilds from its config."""
  encoder = resnet.build_encoder(config)
  path = str(tmp_path / "encoder.keras")
  encoder.save(path)
  loaded = keras.saving.load_model(path)
  x = np.random.default_rng(0).uniform(size=(1, 32, 32, 3)).astype(np.float32)
  # Same weights, the same layers rebuilt: equal up to float32 rounding through them.
  assert_close_f32(loaded(x)["pooled"], encoder(x)["pooled"], *network_terms(encoder))
