"""cpc_tf/inference.py: forward passes compiled by XLA compute the same function."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from cpc_tf import configs, inference
from cpc_tf.configs import DataConfig
from cpc_tf.eval import classifiers, efficient, encoders, linear, supervised
from cpc_tf.eval import loop as loop_lib
from test_encoders import pretrained_model_dir
from tolerances import assert_close_f32, f32_atol, network_terms

MUST_COMPILE = "_XlaMustCompile"  # the attribute tf.function(jit_compile=True) sets


def compiled(fn, *args) -> bool:
  attrs = fn.get_concrete_function(*args).function_def.attr
  return MUST_COMPILE in attrs and attrs[MUST_COMPILE].b


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  return pretrained_model_dir(tmp_path_factory)


@pytest.fixture(scope="module")
def linear_model(model_dir):
  encoder = encoders.load_encoder(model_dir)
  return classifiers.linear_classifier(encoder.model, encoder.pretrain.model.grid, 3)


def test_the_compiled_encoding_is_the_same_function_up_to_rounding(linear_model):
  g = linear_model.grid
  patches = tf.random.stateless_uniform(
      [5, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3], [0, 1])
  means = lambda x: tf.reduce_mean(linear_model.features(x), axis=[1, 2])  # noqa: E731
  plain, xla = (inference.forward(means, xla=x) for x in (False, True))
  assert compiled(xla, patches) and not compiled(plain, patches)
  want = plain(patches).numpy()
  assert want.shape == (5, linear_model.encoder.output["pooled"].shape[-1])
  reduction, depth = network_terms(linear_model.encoder)
  assert_close_f32(xla(patches).numpy(), want, reduction, depth)


def test_compiled_counts_agree_and_skip_an_empty_last_batch(linear_model):
  """5 images in batches of 2: a last batch of 1; counts equal, loss up to rounding."""
  g = linear_model.grid
  shape = [g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3]
  images = tf.random.stateless_uniform([5, *shape], [2, 3])
  labels = tf.constant([0, 1, 2, 1, 0], tf.int64)
  strategy = tf.distribute.get_strategy()
  totals = {}
  for xla in (False, True):
    loop = loop_lib.classification_loop(linear_model, [], False, strategy, xla_counts=xla)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(2)
    totals[xla] = loop_lib.evaluate(loop, strategy.experimental_distribute_dataset(data))
    empty = data.take(1).map(lambda x, y: (x[:0], y[:0]))
    assert loop.totals(strategy.experimental_distribute_dataset(empty))["count"] == 0
  assert totals[True]["count"] == totals[False]["count"] == 5
  # Logits differ by rounding only: an argmax can flip only where the top two logits
  # are within that rounding (a near tie); elsewhere the hits are equal.
  reduction, depth = network_terms(linear_model)
  logits = linear_model(images).numpy()
  top2 = np.sort(logits, axis=1)[:, -2:]
  near_ties = int(np.sum(top2[:, 1] - top2[:, 0] <= 2 * f32_atol(logits, reduction, depth)))
  assert round(abs(totals[True]["top1"] - totals[False]["top1"]) * 5) <= near_ties
  assert_close_f32(totals[True]["loss"], totals[False]["loss"], reduction, depth + 1)


@pytest.fixture
def forward_calls(monkeypatch):
  """The xla argument of every inference.forward call the protocols make."""
  calls = []
  real = inference.forward

  def spy(fn, *, xla, **kwargs):
    calls.append(xla)
    return real(fn, xla=xla, **kwargs)

  monkeypatch.setattr(inference, "forward", spy)
  return calls


# xla=True: the switch reaches the protocol (the loops' own default is False); False
# turns every pass back into a plain tf.function.
@pytest.mark.parametrize("xla", [True, False])
def test_the_linear_protocol_compiles_its_forward_passes_as_configured(
    model_dir, tmp_path, forward_calls, xla):
  data = DataConfig(source="fashion_mnist", max_examples=64, shuffle_buffer=64)
  config = dataclasses.replace(configs.linear_eval_tiny(), data=data, cache_features=True,
                               validation_size=16, xla_inference=xla)
  linear.train_linear(model_dir, config, str(tmp_path), verbose=False)
  assert forward_calls == [xla, xla]  # the head's counts, the cached grid means


# False (slow): the tiny presets' own setting, which the protocols' other tests run.
@pytest.mark.parametrize("xla", [True, pytest.param(False, marks=pytest.mark.slow)])
def test_the_few_label_protocols_compile_their_forward_passes_as_configured(
    model_dir, tmp_path, forward_calls, xla):
  config = configs.replace(configs.efficient_tiny(), frozen_steps=2, finetune_steps=2,
                           eval_every=2, xla_inference=xla, **{"sweep.size": 1})
  efficient.train_efficient(model_dir, config, str(tmp_path / "efficient"), verbose=False)
  calls = list(forward_calls)  # the frozen phase's counts, the fine-tuned's, the test's
  assert len(calls) >= 2 and set(calls) == {xla}
  config = configs.replace(configs.supervised_tiny(), train_steps=2, eval_every=2,
                           xla_inference=xla, **{"sweep.size": 1})
  supervised.train_supervised(config, str(tmp_path / "supervised"), verbose=False)
  calls = forward_calls[len(calls):]  # its training phase's counts, the test's
  assert len(calls) >= 1 and set(calls) == {xla}
