"""The baselines a sceptic tries first: raw pixels, no network (issue 21).

Glossary: N labelled training images, V validation images, Q query images (a
batch of V or of the test images), S image side (`PixelConfig.image_size`),
F = S * S * 3 pixel features, K classes, k voting neighbours.

Each image is read whole, resized to [S, S, 3] (`tf.image.resize`, antialiased,
aspect ratio ignored, no crop) and flattened to F values in [0, 1]
(`load_pixels`). On the labelled subset, validation carve and test split of a
few-label cell (`cpc_tf.eval.subsets`, the same ids as the efficient and
supervised runs of that cell) two baselines choose every setting on the
validation carve, then touch the test split once:
  knn                  cosine kNN, the majority vote of `cpc_tf.probe` (ties: the
                       class of the nearest), k from PixelConfig.ks;
  logistic_regression  softmax regression on pixels standardised with the
                       training set's statistics, Adam, early stopping on
                       validation Top-1 (the best validated weights are kept),
                       one run per weight decay.
If these come close to a method, its gain is not representation learning.
kNN's Top-5 ranks the classes by the vote; with k < 5 at most k classes hold a
vote and the rest of the five follow in class order, so read it at k >= 5 only.

Measured (2026-12-05, Fashion-MNIST, 500-image validation carve, the 10k test
split, PixelConfig defaults, shared 2-core CPU): at 100% of the labels logistic
regression tests at 83.8% Top-1 (validation 86.6%), kNN (k=3) at 85.8% (84.6%),
111 s for both; at 1% (seed 0, 595 images) 76.2% (79.8%) and, with k=1, 73.5%
(73.8%), 8 s.

Layout of a `run_cell` output_dir (a rerun reads results.json back):
  config.json    {"protocol": "pixels", "encoder": "pixels", "config": {...}}
  subset.json    the cell's ids (`cpc_tf.eval.subsets`)
  pixels.json    the choices: k and Top-1 per k; weight decay, epochs and the
                 validation Top-1 of every epoch per decay; seconds per stage
  results.json   two rows per baseline, validation and test (`cpc_tf.eval.results`)
"""

from __future__ import annotations

import json
import os
import time
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import checkpoints, configs, data as data_lib, probe, records
from cpc_tf.configs import DataConfig, PixelConfig, SubsetConfig
from cpc_tf.data import sources
from cpc_tf.eval import held_out, results, subsets

PROTOCOL = "pixels"  # config.json / results.json "protocol"
ENCODER = "pixels"  # results.json "encoder": no network
PIXELS_FILE = "pixels.json"
LOGISTIC_METHOD = "Logistic regression on pixels"
KNN_METHOD = "kNN on pixels (cosine)"
READ_BATCH = 4096  # images per tf.data batch when reading and filtering
QUERY_BATCH = 1000  # kNN queries per similarity matrix: [1000, N] floats, 238 MB at 59.5k
# Standardising divides by max(std, STD_FLOOR). One grey level is 1/255 = 0.004:
# a border pixel that is 0 in all but a few training images has a std far below
# it, and dividing by that std would turn a faint test pixel into a value of
# hundreds. 0.01 (2.5 grey levels) keeps such pixels near the scale of the rest.
STD_FLOOR = 1e-2


# ----------------------------------------------------------------------------
# Pixels

def load_pixels(data: DataConfig, ids: Sequence[str] | None, image_size: int
                ) -> tuple[np.ndarray, np.ndarray]:
  """A labelled split -> (pixels [N, F] float32 in [0, 1], labels [N] int64).

  ids None: every image of the split; else only those example ids
  (`cpc_tf.data.example_ids` form), in the split's storage order. ValueError
  when the split has no labels or lacks some of the ids.
  """
  source = sources.load(data, labelled=True)
  if source.class_names is None:
    raise ValueError(f"{data.source!r} split {data.split!r} has no class labels; the "
                     "pixel baselines need a labelled dataset.")
  keep = data_lib.id_filter(ids)
  ds = source.dataset.batch(READ_BATCH)
  if keep is not None:
    # One hash lookup per batch, not per image: a per-element filter costs
    # seconds per pass over Fashion-MNIST's 60k on 2 cores (`cpc_tf.probe`).
    def kept(batch):
      mask = keep(batch["id"])
      return {name: tf.boolean_mask(value, mask) for name, value in batch.items()}
    ds = ds.map(kept)

  size, features = [image_size, image_size], image_size * image_size * 3

  def resize(images):  # [(B,) H, W, 3]
    # At scale 1 the antialiased resize returns its input bit for bit; skipping
    # it saves most of the read time of Fashion-MNIST at 28 px.
    if images.shape[-3:-1] == size:
      return images
    return tf.image.resize(images, size, antialias=True)

  spec = source.dataset.element_spec["image"]
  if spec.dtype != tf.string and spec.shape.is_fully_defined():
    # Arrays of one shape (Fashion-MNIST): whole batches at once; per image,
    # tf.data's overhead made 60k images take 10 s on 2 cores instead of 1.
    def batch_pixels(batch):
      images = resize(tf.vectorized_map(source.decode, batch["image"]))
      return tf.reshape(images, [-1, features]), batch["label"]
    ds = ds.map(batch_pixels, num_parallel_calls=tf.data.AUTOTUNE)
  else:  # encoded bytes or file paths, of any size: decoded one by one
    def pixels(element):
      image = resize(source.decode(element["image"]))
      return tf.reshape(image, [features]), element["label"]
    ds = (ds.unbatch().map(pixels, num_parallel_calls=tf.data.AUTOTUNE)
          .batch(READ_BATCH))
  xs, ys = [], []
  for x, y in ds.prefetch(1).as_numpy_iterator():
    xs.append(x)
    ys.append(y)
  x = np.concatenate(xs) if xs else np.zeros([0, features], np.float32)
  y = np.concatenate(ys).astype(np.int64) if ys else np.zeros([0], np.int64)
  if ids is not None and len(y) != len(set(map(str, ids))):
    raise ValueError(f"{len(set(map(str, ids))) - len(y)} of the {len(set(map(str, ids)))} "
                     f"ids are not in {data.source!r} split {data.split!r}; pass ids of "
                     "that split (a subset.json written for this data).")
  return x, y


def _top1_top5(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
  """Scores [Q, K] (higher ranks first; equal: lower class) -> (Top-1, Top-5)."""
  if len(labels) == 0:
    raise ValueError("No images to evaluate on: the validation or test split is empty.")
  ranked = tf.math.top_k(scores, min(5, scores.shape[1])).indices.numpy()  # [Q, <=5]
  hits = ranked == np.asarray(labels)[:, None]
  return float(np.mean(hits[:, 0])), float(np.mean(hits.any(axis=1)))


# ----------------------------------------------------------------------------
# kNN

def _vote_scores(query: np.ndarray, memory: tf.Tensor, memory_labels: tf.Tensor,
                 ks: list[int], num_classes: int) -> dict[int, np.ndarray]:
  """-> {k: vote scores [Q, K]} (`probe.vote_scores`); memory [N, F] L2-normalised.

  One similarity matrix and one top-max(ks) per batch of queries serve every k:
  top_k ranks equal similarities by lower memory index, as `probe.knn_predict`
  does, so the first k of the max(ks) nearest are its k nearest.
  """
  largest = max(ks)
  out = {k: [] for k in ks}
  for start in range(0, len(query), QUERY_BATCH):
    q = tf.math.l2_normalize(tf.constant(query[start:start + QUERY_BATCH]), axis=1)
    _, nearest = tf.math.top_k(tf.matmul(q, memory, transpose_b=True), largest)
    neighbour_labels = tf.gather(memory_labels, nearest)  # [Q, max k], nearest first
    for k in ks:
      out[k].append(probe.vote_scores(neighbour_labels[:, :k], num_classes).numpy())
  return {k: np.concatenate(v) for k, v in out.items()}


def knn(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
        test_x: np.ndarray, test_y: np.ndarray, ks: Sequence[int], num_classes: int) -> dict:
  """Cosine kNN of the pixels: k chosen on validation, then tested.

  x arrays [N | V | Q, F], labels int in [0, K). Every k of `ks` with k <= N
  votes on the validation images; the best validation Top-1 picks k (the
  smallest on ties). Top-5 ranks classes by the vote (votes, then nearest).
  -> {"k", "val_top1", "val_top5", "top1", "top5", "per_k": {k: val Top-1}}.
  """
  usable = sorted({int(k) for k in ks if 1 <= k <= len(train_x)})
  if not usable:
    raise ValueError(f"No k of {tuple(ks)} fits {len(train_x)} training images; add a "
                     f"k <= {len(train_x)} to PixelConfig.ks.")
  memory = tf.math.l2_normalize(tf.constant(train_x, tf.float32), axis=1)
  memory_labels = tf.constant(train_y, tf.int32)
  val = {k: _top1_top5(s, val_y) for k, s in
         _vote_scores(val_x, memory, memory_labels, usable, num_classes).items()}
  k = max(usable, key=lambda k: (val[k][0], -k))
  test = _top1_top5(_vote_scores(test_x, memory, memory_labels, [k], num_classes)[k],
                    test_y)
  return {"k": k, "val_top1": val[k][0], "val_top5": val[k][1], "top1": test[0],
          "top5": test[1], "per_k": {j: val[j][0] for j in usable}}


# ----------------------------------------------------------------------------
# Logistic regression

def standardise(train_x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
  """(x - mean) / max(std, STD_FLOOR) with the training set's per-feature statistics."""
  mean = train_x.mean(axis=0, dtype=np.float64)
  std = np.maximum(train_x.std(axis=0, dtype=np.float64), STD_FLOOR)
  return [((x - mean) / std).astype(np.float32) for x in (train_x, *others)]


def _logits(x: tf.Tensor, weights: tuple) -> np.ndarray:
  return (tf.matmul(x, weights[0]) + weights[1]).numpy()


def _fit(x: tf.Tensor, y: tf.Tensor, val_x: tf.Tensor, val_y: np.ndarray,
         config: PixelConfig, weight_decay: float, num_classes: int) -> dict:
  """One weight decay: Adam epochs until `patience` epochs bring no validation gain.

  -> {"weights": (W [F, K], b [K]) of the best validated epoch, "epochs",
  "best_epoch" (1-based), "history": validation Top-1 per epoch, "val_top1",
  "val_top5" (of the kept weights)}.
  """
  # Zero weights: the loss is convex, so no random start is needed, and every
  # decay starts from the same point; the seed only orders the mini-batches.
  w = tf.Variable(tf.zeros([x.shape[1], num_classes]))
  b = tf.Variable(tf.zeros([num_classes]))
  optimizer = keras.optimizers.Adam(config.learning_rate)
  optimizer.build([w, b])
  batch = config.batch_size

  @tf.function
  def epoch(order):  # one graph per epoch: ~230 steps at 59.5k images, no Python per step
    for start in tf.range(0, tf.shape(order)[0], batch):
      index = order[start:start + batch]
      with tf.GradientTape() as tape:
        logits = tf.matmul(tf.gather(x, index), w) + b
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            tf.gather(y, index), logits))
        # supp. C.1's classifier decay as TF1's l2_regularizer: on W, not on b.
        loss += weight_decay * tf.reduce_sum(tf.square(w)) / 2
      optimizer.apply_gradients(zip(tape.gradient(loss, [w, b]), [w, b]))

  rng = np.random.default_rng(config.seed)
  history, best, best_weights = [], -1.0, None
  while len(history) < config.max_epochs:
    epoch(tf.constant(rng.permutation(x.shape[0]), tf.int32))
    top1 = _top1_top5(_logits(val_x, (w, b)), val_y)[0]
    history.append(top1)
    if top1 > best:
      best, best_weights = top1, (w.numpy(), b.numpy())
    if len(history) - 1 - int(np.argmax(history)) >= config.patience:
      break
  # The kept weights' own scores, not the recorded best: what the test will use.
  val_top1, val_top5 = _top1_top5(_logits(val_x, best_weights), val_y)
  return {"weights": best_weights, "epochs": len(history),
          "best_epoch": int(np.argmax(history)) + 1, "history": history,
          "val_top1": val_top1, "val_top5": val_top5}


def logistic_regression(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                        val_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
                        config: PixelConfig, num_classes: int,
                        log: Callable[[str], None] = print) -> dict:
  """Softmax regression of the standardised pixels, one run per weight decay.

  x arrays [N | V | Q, F], labels int in [0, K). The decay of best validation
  Top-1 (the first of config.weight_decays on ties) is tested with its best
  validated weights. -> {"weight_decay", "epochs", "best_epoch", "val_top1",
  "val_top5", "top1", "top5", "per_decay": {decay: {"epochs", "best_epoch",
  "val_top1", "val_top5", "history"}}}; one log line per decay.
  """
  train_x, val_x, test_x = standardise(train_x, val_x, test_x)
  x, y = tf.constant(train_x), tf.constant(train_y, tf.int32)
  val = tf.constant(val_x)
  fits = {}
  for decay in config.weight_decays:
    started = time.perf_counter()
    fits[decay] = _fit(x, y, val, val_y, config, decay, num_classes)
    f = fits[decay]
    log(f"logistic regression, weight decay {decay:g}: validation top-1 "
        f"{f['val_top1']:.4f} at epoch {f['best_epoch']} of {f['epochs']} "
        f"({time.perf_counter() - started:.0f} s)")
  decay = max(config.weight_decays, key=lambda d: (fits[d]["val_top1"],
                                                  -config.weight_decays.index(d)))
  best = fits[decay]
  top1, top5 = _top1_top5(_logits(tf.constant(test_x), best["weights"]), test_y)
  return {"weight_decay": decay, "epochs": best["epochs"], "best_epoch": best["best_epoch"],
          "val_top1": best["val_top1"], "val_top5": best["val_top5"], "top1": top1,
          "top5": top5,
          "per_decay": {d: {k: v for k, v in f.items() if k != "weights"}
                        for d, f in fits.items()}}


# ----------------------------------------------------------------------------
# One cell of the study

def run_cell(config: PixelConfig, subset: SubsetConfig, output_dir: str, *,
             subset_file: str | None = None, log: Callable[[str], None] = print) -> dict:
  """Both baselines on one cell's subsets (module doc's layout); -> the results.json dict.

  A finished output_dir is read back without any work; one that holds
  another config (or subset) is refused with a ValueError naming the fields.
  """
  # A test split the folder lacks is refused before output_dir is written.
  held_out.test_data(subset.data, subset.test_split, selects_on_validation=True)
  settings = {"pixels": configs.to_dict(config), "subset": configs.to_dict(subset)}
  # started=True: a pixel run saves no checkpoint, which is what `sweep.check_run`
  # takes as "started"; without it another run's config.json would be overwritten.
  checkpoints.guard_config(
      output_dir, {"protocol": PROTOCOL, "encoder": ENCODER, "config": settings},
      lambda _: False, write=True, started=True, what="another pixel-baseline run",
      hint="Use a new output_dir, or the saved settings")
  results_path = os.path.join(output_dir, results.RESULTS_FILE)
  if tf.io.gfile.exists(results_path):
    log(f"pixel baselines: {results_path} exists, read back")
    return results.read_results(results_path)
  subs = subsets.resolve(subset, output_dir, subset_file)
  held_out.record(subs.train, output_dir)
  num_classes = data_lib.num_classes(subs.train)
  seconds = {}
  started = time.perf_counter()
  train = load_pixels(subs.train, subs.train_ids, config.image_size)
  val = load_pixels(subs.validation, subs.validation_ids, config.image_size)
  test = load_pixels(subs.test, None, config.image_size)
  seconds["read"] = round(time.perf_counter() - started, 1)
  log(f"pixel baselines: {len(train[1])} training, {len(val[1])} validation, "
      f"{len(test[1])} test images of {config.image_size}x{config.image_size}x3 "
      f"({seconds['read']:.0f} s)")

  started = time.perf_counter()
  neighbours = knn(*train, *val, *test, config.ks, num_classes)
  seconds["knn"] = round(time.perf_counter() - started, 1)
  log(f"kNN: k={neighbours['k']} (validation top-1 {neighbours['val_top1']:.4f}), test "
      f"top-1 {neighbours['top1']:.4f} ({seconds['knn']:.0f} s)")
  started = time.perf_counter()
  logistic = logistic_regression(*train, *val, *test, config, num_classes, log=log)
  seconds["logistic_regression"] = round(time.perf_counter() - started, 1)
  log(f"logistic regression: weight decay {logistic['weight_decay']:g}, test top-1 "
      f"{logistic['top1']:.4f} ({seconds['logistic_regression']:.0f} s)")

  records.write_json(os.path.join(output_dir, PIXELS_FILE), json.loads(json.dumps(
      {"knn": neighbours, "logistic_regression": logistic, "seconds": seconds})))
  n, fraction = len(subs.train_ids), subs.label_fraction
  rows = []
  for method, fit in ((LOGISTIC_METHOD, logistic), (KNN_METHOD, neighbours)):
    rows += [results.row(method, fraction, fit["val_top1"], fit["val_top5"], "validation", n),
             results.row(method, fraction, fit["top1"], fit["top5"], "test", n)]
  # results.json last: its presence marks the cell finished.
  return results.write_results(results_path, PROTOCOL, subset.data.source, ENCODER, rows,
                               settings, held_out.summary(subs.test, len(test[1])))
