"""A 2-D map of what encoders learned: embeddings -> side-by-side scatter plots (issue 22).

Glossary: N images, D feature depth, K classes, n <= max_points the images
plotted.

`write_map(path, {"CPC": (embeddings, labels), "Random init": (...)}, class_names)`
writes one PNG: a panel per encoder, each image a dot at its 2-D projection,
coloured by class (grey without a label), one shared legend. The projection is
the best method that imports (`method()`):
  "umap"  UMAP (umap-learn), if installed (not a dependency: it pulls numba);
  "tsne"  t-SNE (scikit-learn, a dependency), perplexity min(30, (n - 1) / 3);
  "pca"   the first two principal components (NumPy), when neither imports.
The method and the sample are written in the title. Each panel is projected on
its own (the axes of two panels are not comparable; the clusters are). At most
`max_points` images are drawn, the same seeded sample in every panel when the
panels hold the same N images, so the panels show the same images.

  python -m launch.embed ... --map   # writes <output_dir>/embedding_map.png
From Python (a study's CPC and random-init encoders, or any two runs):
  >>> from cpc_tf.eval import embedding_map
  >>> embedding_map.write_map("map.png", {"CPC": (x, y), "Random init": (x0, y)}, names)
  'tsne'
The PNG carries MARK in its "Software" text chunk (`is_map`), so a rerun
knows the file is its own.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np

from cpc_tf import records

METHODS = ("umap", "tsne", "pca")
TITLES = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}
MARK = "cpc_tf.eval.embedding_map"
MAX_POINTS = 2000  # t-SNE of 2,000 points takes seconds on 2 cores
_LEGEND_LIMIT = 20  # classes named in the legend; more are coloured, not named


class MapError(ValueError):
  """Embeddings or labels a map cannot be drawn from."""


def method() -> str:
  """The best projection that imports here: "umap", else "tsne", else "pca"."""
  try:
    import umap  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    return "umap"
  except Exception:  # absent, or broken (numba / llvmlite): next method
    pass
  try:
    from sklearn.manifold import TSNE  # noqa: F401  pylint: disable=import-outside-toplevel
    return "tsne"
  except Exception:
    return "pca"


def project(x: np.ndarray, how: str, seed: int = 0) -> np.ndarray:
  """[n, D] -> [n, 2] by `how` (one of METHODS), deterministic for a seed."""
  x = np.asarray(x, np.float64)
  if x.shape[1] < 2:  # a 1-D embedding: its line, drawn flat
    x = np.concatenate([x, np.zeros((len(x), 2 - x.shape[1]))], axis=1)
  if how == "umap":
    import umap  # pylint: disable=import-outside-toplevel
    return umap.UMAP(n_components=2, n_neighbors=min(15, len(x) - 1),
                     random_state=seed).fit_transform(x)
  if how == "tsne":
    from sklearn.manifold import TSNE  # pylint: disable=import-outside-toplevel
    perplexity = max(1.0, min(30.0, (len(x) - 1) / 3))
    return TSNE(n_components=2, perplexity=perplexity, init="pca",
                random_state=seed).fit_transform(x)
  if how != "pca":
    raise MapError(f"method={how!r}; choose one of {METHODS}.")
  centred = x - x.mean(axis=0)
  _, _, vt = np.linalg.svd(centred, full_matrices=False)
  components = vt[:2]
  # The sign of a component is arbitrary: fix it so its largest weight is positive.
  signs = np.sign(components[np.arange(len(components)),
                             np.argmax(np.abs(components), axis=1)])
  xy = centred @ (components * np.where(signs == 0, 1, signs)[:, None]).T
  return xy if xy.shape[1] == 2 else np.pad(xy, [(0, 0), (0, 2 - xy.shape[1])])


def sample(n: int, max_points: int, seed: int) -> np.ndarray:
  """Sorted indices of at most max_points of n images, seeded."""
  if n <= max_points:
    return np.arange(n)
  return np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))


def _checked(panels: Mapping[str, tuple], class_names: Sequence[str]) -> dict:
  if not panels:
    raise MapError("No embeddings to map: pass {name: (embeddings [N, D], labels [N])}.")
  out = {}
  for name, pair in panels.items():
    try:
      x, labels = pair
    except (TypeError, ValueError):
      raise MapError(f"Panel {name!r}: pass a pair (embeddings [N, D], labels [N]).") from None
    x, labels = np.asarray(x), np.asarray(labels)
    if x.ndim != 2 or len(x) < 3:
      raise MapError(f"Panel {name!r}: a map needs embeddings [N, D] of N >= 3 images; "
                     f"got shape {x.shape}. Embed more images, or skip the map.")
    if not np.all(np.isfinite(x)):
      raise MapError(f"Panel {name!r}: embeddings hold NaN or infinite values; check the "
                     "encoder that produced them.")
    if labels.shape != (len(x),) or not np.issubdtype(labels.dtype, np.integer):
      raise MapError(f"Panel {name!r}: labels must be integers [N] = [{len(x)}] (-1 for "
                     f"none); got {labels.dtype} {labels.shape}.")
    if class_names and labels.max() >= len(class_names):
      raise MapError(f"Panel {name!r}: label {labels.max()} but only {len(class_names)} "
                     "class names; pass every class name, in label order.")
    out[str(name)] = (x, labels.astype(np.int64))
  return out


def write_map(path: str, panels: Mapping[str, tuple[np.ndarray, np.ndarray]],
              class_names: Sequence[str] = (), *, max_points: int = MAX_POINTS,
              seed: int = 0, how: str | None = None) -> str:
  """Writes the PNG map of `panels` (module doc) atomically; returns the method used.

  panels: {encoder name: (embeddings [N, D], labels [N] int, -1 = no label)};
  class_names: [K] names of the labels (may be empty); how: one of METHODS
  (default `method()`).
  """
  if max_points < 3:
    raise MapError(f"max_points={max_points}: need at least 3.")
  panels = _checked(panels, list(class_names))
  how = how or method()
  if how not in METHODS:
    raise MapError(f"how={how!r}; choose one of {METHODS}.")
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")  # files only; no display on servers
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel

  num_classes = max([len(class_names)] + [int(l.max()) + 1 for _, l in panels.values()])
  cmap = plt.get_cmap("tab10" if num_classes <= 10 else "tab20" if num_classes <= 20
                      else "turbo")
  colours = [cmap(i if num_classes <= 20 else i / max(num_classes - 1, 1))
             for i in range(num_classes)]
  fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels) + 2, 5), squeeze=False)
  shown, total = set(), set()
  for ax, (name, (x, labels)) in zip(axes[0], panels.items()):
    keep = sample(len(x), max_points, seed)
    xy, kept = project(x[keep], how, seed), labels[keep]
    shown.add(len(keep))
    total.add(len(x))
    for c in sorted(set(kept.tolist())):
      mine = kept == c
      label = (class_names[c] if c < len(class_names) else str(c)) if c >= 0 else "no label"
      ax.scatter(xy[mine, 0], xy[mine, 1], s=6, alpha=0.7, linewidths=0,
                 color=colours[c] if c >= 0 else "0.6", label=label)
    ax.set_title(f"{name} (D={x.shape[1]})")
    ax.set_xticks([])
    ax.set_yticks([])
  handles, labels_ = axes[0][0].get_legend_handles_labels()
  for ax in axes[0][1:]:  # classes a later panel has and the first lacks
    for h, l in zip(*ax.get_legend_handles_labels()):
      if l not in labels_:
        handles.append(h)
        labels_.append(l)
  if len(labels_) <= _LEGEND_LIMIT:
    fig.legend(handles, labels_, loc="center right", markerscale=3, frameon=False)
  count = "/".join(str(n) for n in sorted(shown))
  of = "/".join(str(n) for n in sorted(total))
  fig.suptitle(f"{TITLES[how]} of the embeddings ({count} of {of} images, seed {seed})")
  fig.tight_layout(rect=(0, 0, 1 - 1.6 / fig.get_figwidth(), 0.95))
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100, metadata={"Software": MARK})
  plt.close(fig)
  records.write_text(path, buffer.getvalue(), mode="wb")
  return how


def is_map(path: str) -> bool:
  """Whether `path` is a PNG this module wrote (its "Software" text chunk)."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  try:
    with Image.open(path) as image:
      return image.format == "PNG" and image.info.get("Software") == MARK
  except Exception:  # not an image
    return False
