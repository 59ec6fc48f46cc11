"""cpc_tf/eval/embedding_map.py: the 2-D map PNG, its method fallbacks, its refusals."""

import sys

import numpy as np
import pytest
from PIL import Image

from cpc_tf.eval import embedding_map


def separable(n_per_class=20, classes=3, dim=16, seed=0):
  """Tight clusters far apart: any projection keeps them apart."""
  rng = np.random.default_rng(seed)
  centres = rng.normal(size=(classes, dim)) * 20
  labels = np.repeat(np.arange(classes), n_per_class)
  return centres[labels] + rng.normal(size=(len(labels), dim)) * 0.1, labels


def test_two_panels_make_one_png_with_the_method_in_it(tmp_path):
  x, y = separable()
  noise = np.random.default_rng(1).normal(size=x.shape)
  path = str(tmp_path / "map.png")
  how = embedding_map.write_map(path, {"CPC": (x, y), "Random init": (noise, y)},
                                ("ant", "bee", "cat"))
  assert how == embedding_map.method() == "tsne"  # scikit-learn installed, umap-learn not
  with Image.open(path) as image:
    assert image.format == "PNG" and image.size[0] > 2 * image.size[1]  # side by side
  assert embedding_map.is_map(path)
  assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("how", embedding_map.METHODS[1:])
def test_each_projection_keeps_separable_classes_apart(how):
  x, y = separable()
  xy = embedding_map.project(x, how, seed=0)
  assert xy.shape == (len(x), 2)
  centres = np.stack([xy[y == c].mean(0) for c in range(3)])
  spread = max(np.linalg.norm(xy[y == c] - centres[c], axis=1).max() for c in range(3))
  gaps = [np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a)]
  assert min(gaps) > 2 * spread, (how, gaps, spread)
  np.testing.assert_array_equal(xy, embedding_map.project(x, how, seed=0))  # seeded


def test_without_umap_and_sklearn_the_map_falls_back_to_pca(tmp_path, monkeypatch):
  for module in ("umap", "sklearn", "sklearn.manifold"):
    monkeypatch.setitem(sys.modules, module, None)  # `import` raises ImportError
  assert embedding_map.method() == "pca"
  x, y = separable()
  path = str(tmp_path / "map.png")
  assert embedding_map.write_map(path, {"CPC": (x, y)}, ("a", "b", "c")) == "pca"
  assert embedding_map.is_map(path)


def test_sample_is_seeded_and_shared_by_panels_of_the_same_images():
  a = embedding_map.sample(10_000, 2000, seed=3)
  assert len(a) == 2000 and len(set(a.tolist())) == 2000 and np.all(np.diff(a) > 0)
  np.testing.assert_array_equal(a, embedding_map.sample(10_000, 2000, seed=3))
  assert not np.array_equal(a, embedding_map.sample(10_000, 2000, seed=4))
  np.testing.assert_array_equal(embedding_map.sample(50, 2000, seed=0), np.arange(50))


def test_a_large_set_is_subsampled_and_unlabelled_points_are_drawn(tmp_path):
  x, y = separable(n_per_class=40)
  y[:5] = -1
  path = str(tmp_path / "map.png")
  embedding_map.write_map(path, {"CPC": (x, y)}, max_points=30, how="pca")
  assert embedding_map.is_map(path)


def test_a_png_it_did_not_write_is_not_its_own(tmp_path):
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "other.png")
  (tmp_path / "text.png").write_text("not an image")
  assert not embedding_map.is_map(str(tmp_path / "other.png"))
  assert not embedding_map.is_map(str(tmp_path / "text.png"))


@pytest.mark.parametrize("panels, names, message", [
    ({}, (), "No embeddings"),
    ({"CPC": np.zeros((5, 2))}, (), "pass a pair"),
    ({"CPC": (np.zeros((5,)), np.zeros(5, int))}, (), r"\[N, D\] of N >= 3 images"),
    ({"CPC": (np.zeros((5, 2)), np.zeros(4, int))}, (), r"labels must be integers \[N\]"),
    ({"CPC": (np.zeros((5, 2)), np.zeros(5))}, (), "labels must be integers"),
    ({"CPC": (np.full((5, 2), np.nan), np.zeros(5, int))}, (), "NaN"),
    ({"CPC": (np.zeros((5, 2)), np.full(5, 3))}, ("a", "b"), "only 2 class names"),
])
def test_bad_inputs_are_refused_in_one_line(tmp_path, panels, names, message):
  with pytest.raises(embedding_map.MapError, match=message) as e:
    embedding_map.write_map(str(tmp_path / "map.png"), panels, names)
  assert "\n" not in str(e.value)
  assert not (tmp_path / "map.png").exists()
