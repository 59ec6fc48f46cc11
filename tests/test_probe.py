"""cpc_tf.probe: the kNN vote by hand, the labelled set, features, and no state touched."""

import dataclasses
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cpc_tf import configs, data, probe
from cpc_tf.configs import DataConfig, ProbeConfig
from cpc_tf.data import DataError


def at(degrees, norm=1.0):
  """A 2-D vector at `degrees` from the x axis, of length `norm`."""
  r = np.deg2rad(degrees)
  return [norm * np.cos(r), norm * np.sin(r)]


# Memory at 0, 30, 35, 90 and 100 degrees with labels 2, 1, 1, 0, 0 and lengths
# that differ (cosine ignores them). Seen from a query at 10 degrees the
# neighbours, nearest first, are 0 (class 2, 10 deg off), 30 (class 1, 20), 35
# (class 1, 25), 90 (class 0, 80), 100 (class 0, 90).
MEMORY = np.array([at(0, 1.0), at(30, 4.0), at(35, 0.3), at(90, 2.0), at(100, 7.0)],
                  np.float32)
LABELS = np.array([2, 1, 1, 0, 0])


@pytest.mark.parametrize("k, want", [
    (1, 2),  # the nearest
    (2, 2),  # 1 vote each for classes 2 and 1: class 2 holds the nearest
    (3, 1),  # two votes beat the nearest
    (4, 1),  # 2 (class 1) vs 1 vs 1
    (5, 1),  # 2 votes each for classes 1 and 0: class 1 is nearer (a plain argmax says 0)
])
def test_vote_by_hand(k, want):
  query = np.array([at(10, 10.0)], np.float32)
  assert probe.knn_predict(query, MEMORY, LABELS, k, 3).numpy().tolist() == [want]


def test_several_queries_and_top1_by_hand():
  # 97 deg: 100 (class 0, 3 off), 90 (class 0, 7), 35 (class 1, 62), 30 (class 1, 67).
  # -40 deg: 0 (class 2, 40), 30 (class 1, 70), 35 (class 1, 75).
  query = np.array([at(10), at(97, 0.1), at(-40, 3.0)], np.float32)
  assert probe.knn_predict(query, MEMORY, LABELS, 1, 3).numpy().tolist() == [2, 0, 2]
  assert probe.knn_predict(query, MEMORY, LABELS, 3, 3).numpy().tolist() == [1, 0, 1]
  # Labels 1, 0, 2 -> with k=3 the first two are right.
  assert probe.knn_top1(query, [1, 0, 2], MEMORY, LABELS, 3, 3) == pytest.approx(2 / 3)
  assert probe.knn_top1(query, [2, 0, 2], MEMORY, LABELS, 1, 3) == 1.0


def _vote(query, memory, labels, k, num_classes):
  """The module doc's rule, one query at a time in NumPy."""
  out = []
  for q in query:
    sims = memory @ q / (np.linalg.norm(memory, axis=1) * np.linalg.norm(q))
    order = sorted(range(len(memory)), key=lambda i: (-sims[i], i))[:k]
    counts = np.bincount(labels[order], minlength=num_classes)
    tied = [c for c in range(num_classes) if counts[c] == counts.max()]
    out.append(next(labels[i] for i in order if labels[i] in tied))
  return out


def test_vote_matches_a_numpy_rule_on_random_data():
  rng = np.random.default_rng(0)
  # Integer vectors make many neighbour and class ties.
  memory = rng.integers(-2, 3, (60, 4)).astype(np.float32) + 0.01
  query = rng.integers(-2, 3, (40, 4)).astype(np.float32) + 0.01
  labels = rng.integers(0, 5, 60)
  for k in (1, 2, 4, 7):
    got = probe.knn_predict(query, memory, labels, k, 5).numpy().tolist()
    assert got == _vote(query, memory, labels, k, 5), k


def test_bad_shapes_and_k_are_refused():
  with pytest.raises(ValueError, match="k=6 needs 1 <= k <= M=5"):
    probe.knn_predict(MEMORY[:1], MEMORY, LABELS, 6, 3)
  with pytest.raises(ValueError, match=r"query \[Q, D\] and memory \[M, D\]"):
    probe.knn_predict(np.zeros([1, 3], np.float32), MEMORY, LABELS, 1, 3)


@pytest.mark.parametrize("kwargs, match", [
    ({"every_steps": -1}, "every_steps >= 0"),
    ({"query_size": 0}, "sizes >= 1"),
    ({"k": 0}, "probe k=0"),
    ({"k": 11, "memory_size": 10}, "k <= memory_size=10"),
    ({"path": "/data"}, "without a probe source"),
    ({"split": ""}, "name the labelled split"),
])
def test_bad_probe_configs(kwargs, match):
  with pytest.raises(ValueError, match=match):
    ProbeConfig(**kwargs)


def test_presets_probe_fashion_mnist_only():
  assert configs.fashion_mnist_small().probe.every_steps > 0
  assert configs.cpc_v2_paper().probe.every_steps == 0
  assert configs.tiny().probe.every_steps == 0  # the tests' config stays fast


FASHION = DataConfig(source="fashion_mnist", max_examples=64)


def test_labelled_set_draws_disjoint_seeded_ids_of_the_training_split():
  config = ProbeConfig(every_steps=1, memory_size=30, query_size=20, seed=3)
  drawn = probe.labelled_set(config, FASHION)
  assert drawn.data.split == "train" and drawn.data.max_examples == 0  # the whole split
  assert len(drawn.memory_ids) == 30 and len(drawn.query_ids) == 20
  assert not set(drawn.memory_ids) & set(drawn.query_ids)
  assert max(int(i) for i in drawn.memory_ids + drawn.query_ids) >= 64
  assert drawn.num_classes == 10
  assert probe.labelled_set(config, FASHION) == drawn
  other = probe.labelled_set(dataclasses.replace(config, seed=4), FASHION)
  assert other.memory_ids != drawn.memory_ids


def _folder(root, classes):
  """A folder of 4 small PNGs per class (flat when classes is empty)."""
  rng = np.random.default_rng(0)
  for c in classes or [""]:
    os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(4):
      pixels = rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)
      Image.fromarray(pixels).save(os.path.join(root, c, f"{i}.png"))
  return str(root)


def test_a_labelled_folder_and_its_class_names(tmp_path):
  folder = DataConfig(source="folder", path=_folder(tmp_path, ["cat", "dog"]),
                      test_fraction=0.0)
  drawn = probe.labelled_set(ProbeConfig(every_steps=1, k=1, memory_size=5, query_size=3),
                             folder)
  assert drawn.class_names == ("cat", "dog")
  assert all(i.startswith(("cat/", "dog/")) for i in drawn.memory_ids + drawn.query_ids)


@pytest.mark.parametrize("test_fraction", [0.0, 0.1])
def test_a_folder_without_classes_is_one_clear_error(tmp_path, test_fraction):
  flat = DataConfig(source="folder", path=_folder(tmp_path, []), test_fraction=test_fraction)
  with pytest.raises(DataError, match="The kNN probe cannot read the 'train' split") as e:
    probe.labelled_set(ProbeConfig(every_steps=1, k=1, memory_size=2, query_size=1), flat)
  assert "class sub-folders" in str(e.value) and "--probe_every=0" in str(e.value)
  assert "\n" not in str(e.value)


def test_too_few_images_and_an_unknown_split_are_named():
  with pytest.raises(DataError, match="needs 70000 images .* holds 60000"):
    probe.labelled_set(ProbeConfig(every_steps=1, memory_size=60_000, query_size=10_000),
                       FASHION)
  with pytest.raises(DataError, match="cannot read the 'nope' split .* no split 'nope'"):
    probe.labelled_set(ProbeConfig(every_steps=1, split="nope"), FASHION)


def test_unlabelled_examples_are_refused(monkeypatch):
  """A split whose examples carry label -1 (e.g. TFDS stl10 'unlabelled')."""
  real = probe.sources.load

  def unlabelled(*args, **kwargs):
    source = real(*args, **kwargs)
    return dataclasses.replace(source, dataset=source.dataset.map(
        lambda e: dict(e, label=tf.constant(-1, tf.int64))))
  monkeypatch.setattr(probe.sources, "load", unlabelled)
  with pytest.raises(DataError, match="has none .*label -1"):
    probe.labelled_set(ProbeConfig(every_steps=1, memory_size=10, query_size=5), FASHION)


def _trainer(config):
  from cpc_tf import train
  return train.Trainer(config, tf.distribute.get_strategy(), 4)


def _state(trainer):
  """Every variable of model, averaged model and optimizer, and the step."""
  variables = (trainer.model.variables + trainer.averaged_model.variables
               + trainer.optimizer.variables + [trainer.step])
  return [np.array(v.numpy()) for v in variables]


def test_the_probe_changes_no_weight_no_optimizer_slot_and_no_average():
  config = configs.replace(configs.tiny(), **{"model.head.directions": ("down",)})
  trainer = _trainer(config)
  g = config.model.grid
  batch = tf.random.stateless_uniform(
      [config.batch_size, g.grid_size, g.grid_size, g.patch_size, g.patch_size, 3], [1, 2])
  iterator = iter(tf.data.Dataset.from_tensors(batch).repeat())
  trainer.loop.train(iterator, 2)  # Adam slots, iteration count and average all moved
  before = _state(trainer)
  assert int(trainer.optimizer.iterations) == 2
  probe_config = ProbeConfig(every_steps=1, k=3, memory_size=20, query_size=10,
                             batch_size=8)
  labelled = probe.labelled_set(probe_config, config.data)
  knn = probe.Probe(probe_config, labelled, g, trainer.averaged_model.encoder)
  top1 = [knn(), knn()]
  assert all(0.0 <= t <= 1.0 for t in top1) and knn.calls == 2 and knn.seconds > 0
  after = _state(trainer)
  assert len(after) == len(before)
  for a, b in zip(before, after):
    np.testing.assert_array_equal(a, b)  # bit-identical: the probe only reads


@pytest.mark.parametrize("form", [None, configs.AugmentConfig(jitter_size=5, color_drop_p=1.0)],
                         ids=["plain", "v1_marks"])
def test_features_are_the_grid_mean_of_the_model_latents_of_the_centre_crop(form):
  config = configs.tiny()
  trainer = _trainer(config)
  probe_config = ProbeConfig(every_steps=1, k=1, memory_size=7, query_size=3, batch_size=4)
  labelled = probe.labelled_set(probe_config, config.data)
  knn = probe.Probe(probe_config, labelled, config.model.grid, trainer.averaged_model.encoder,
                    test_form=form)
  features, labels, in_memory = knn.encode()  # 10 images: batches of 4, 4 and 2 (padded)
  depth = trainer.averaged_model.encoder.output["pooled"].shape[-1]
  assert features.shape == (10, depth) and labels.shape == in_memory.shape == (10,)
  # Storage order (Fashion-MNIST ids are indices); the memory rows are flagged.
  order = sorted(int(i) for i in labelled.memory_ids + labelled.query_ids)
  assert in_memory.numpy().tolist() == [str(i) in labelled.memory_ids for i in order]
  # The images, decoded on their own, centre-cropped and cut as in pre-training.
  pixels, all_labels = data.fashion_mnist.load("train")
  patches = tf.stack([data.grid_patches(data.images.to_rgb(image), config.model.grid,
                                        test_form=form) for image in pixels[order]])
  want = tf.reduce_mean(trainer.averaged_model.latents(patches), axis=[1, 2])
  # Graph vs eager on float32 features of scale ~1: a few ulps of reassociation.
  np.testing.assert_allclose(features, want, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(labels, all_labels[order])
