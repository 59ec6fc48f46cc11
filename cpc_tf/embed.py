"""Embeddings in one call: images -> one pooled vector per image.

Glossary: B images in memory, N images of a folder or split, H/W their size, C
channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA), S the pre-training crop side
(GridConfig.image_size), R the side images are resized to first (resize_to),
Gh/Gw the patch grid, D feature depth, K classes.

The embedding of an image is the one pre-training computes for it, without
augmentation, as the online probe (`cpc_tf.probe`) and linear evaluation's
test input (supp. B): resize to R x R (aspect ignored, supp. A), centre S x S
crop (`data.grid_crop`), cut into the pre-training patch grid, encode each patch
to its "pooled" vector, mean over the Gh x Gw grid -> [D]. (The v1-era test
form of linear evaluation, `augment.test_form`, is not applied, so a model_dir
and its export embed alike.)

Where the encoder comes from (`load(source)`, loaded once per process and
cached by path and step; `load.cache_clear()` reads it again):
  * a pre-training model_dir: the Polyak-averaged weights (supp. A) of the latest
    checkpoint, or of `step`;
  * an exported SavedModel (`cpc_tf.export`): its `patched` signature, whose
    declared input gives S, and `grid()`, which gives R;
  * an `Embedder`, or any `cpc_tf.resnet` encoder with `grid=` (e.g. a random
    initialisation, the baseline of a map), or a supervised baseline's
    output_dir with `grid=`.

In memory (uint8 / uint16 in their full range, or float in [0, 1]):
  >>> import cpc_tf
  >>> cpc_tf.embed(images, "runs/tiny").shape     # images [B, H, W, C]
  (B, D)                                          # float32; (8, 32) for 8 images, tiny preset
`cpc_tf.embed(...)` is `cpc_tf.embed.embed(...)`; `import cpc_tf` alone does
not import TensorFlow.

`embed_dataset(data, source)` embeds every image of a folder (one sub-folder
per class, or flat: no labels) or a TFDS / Fashion-MNIST split, in storage
order, batched, with a progress line -> `Embeddings`; `embed_data(data, source,
output_dir)` does the same and writes
  embeddings.npz   embeddings [N, D] float32, names [N] (the example id: file
                   path relative to the folder, TFDS tfds_id, Fashion-MNIST
                   index), labels [N] int64 (-1: no label), class_names [K],
                   encoder (where the weights came from), format
  embeddings.csv   one row per image: name,label,class,d0,...,d{D-1}
Each file is written whole, atomically (`records.write_text`), after every
image is embedded: an interrupted run leaves the previous files or none, and a
rerun writes the same bytes. A file in the way that this module did not write
is refused (pass overwrite=True or another directory). The binary is
launch/embed.py (`cpc-embed` when installed).
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
import sys
import time
import types
import zipfile
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from cpc_tf import data as data_lib
from cpc_tf import patches as patches_lib, records
from cpc_tf.configs import DataConfig, GridConfig
from cpc_tf.data import folders, images as images_lib, splits
from cpc_tf.eval import embedding_map, encoders
from cpc_tf.model import encode_patches

FORMAT = "cpc_tf.embed/1"  # stored in every npz this module writes: how reruns know it
NPZ, CSV, MAP = "embeddings.npz", "embeddings.csv", "embedding_map.png"
CSV_HEADER = ("name", "label", "class")
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # zip entry date: a rerun writes the same bytes
_PROGRESS_SECONDS = 5.0


class EmbedError(ValueError):
  """Bad input to an embedding: images, source or output files."""


@dataclasses.dataclass(frozen=True)
class Embedder:
  """An encoder ready to embed: crops [B, S, S, 3] float32 in [0, 1] -> [B, D]."""

  pooled: Callable[[tf.Tensor], tf.Tensor]
  grid: GridConfig  # only image_size (S) and resize_to (R) shape the crops
  source: str  # where the weights came from, as results.json's "encoder"
  keep: object = None  # what `pooled` needs alive (a loaded SavedModel)

  def crops(self, images: tf.Tensor) -> tf.Tensor:
    """One image [H, W, C] (any C in 1..4, uint8/uint16/float) -> its crop [S, S, 3]."""
    return data_lib.grid_crop(images_lib.to_rgb(images), self.grid)


@dataclasses.dataclass(frozen=True)
class Embeddings:
  """What `embed_data` writes (and `read` reads back)."""

  embeddings: np.ndarray  # [N, D] float32
  names: tuple[str, ...]  # example ids, storage order
  labels: np.ndarray  # [N] int64, -1 without a label
  class_names: tuple[str, ...]  # () when the images have no labels
  encoder: str


def from_encoder(encoder: keras.Model, grid: GridConfig, source: str = "encoder") -> Embedder:
  """A `cpc_tf.resnet` encoder (images -> named outputs) + its patch grid -> Embedder."""
  grid.grid_size  # raises when the patches do not tile the crop
  if grid.image_size > grid.resize_to:
    raise EmbedError(f"grid image_size={grid.image_size} > resize_to={grid.resize_to}: "
                     "the crop must fit in the resized image.")
  s = grid.image_size

  @tf.function(input_signature=[tf.TensorSpec([None, s, s, 3], tf.float32)])
  def pooled(crops):
    patches = patches_lib.extract_patches(crops, grid.patch_size, grid.stride)
    latents = encode_patches(encoder, patches, training=False)  # [B, Gh, Gw, D]
    return tf.reduce_mean(tf.cast(latents, tf.float32), axis=[1, 2])

  return Embedder(pooled, grid, source, keep=encoder)


def from_saved_model(path: str) -> Embedder:
  """An export of `cpc_tf.export` -> Embedder through its `patched` signature."""
  loaded = tf.saved_model.load(path)
  signature = loaded.signatures.get("patched") if hasattr(loaded, "signatures") else None
  if signature is None:
    raise EmbedError(f"The SavedModel in {path} has no `patched` signature: export the "
                     "encoder with launch/export.py (cpc_tf.export).")
  spec = signature.structured_input_signature[1].get("images")
  size = spec.shape[1] if spec is not None and spec.shape.rank == 4 else None
  if size is None or not hasattr(loaded, "grid"):
    raise EmbedError(f"The SavedModel in {path} does not declare its image size (exported "
                     "before issue 22): export it again with launch/export.py, or pass "
                     "its pre-training --model_dir.")
  grid = GridConfig(**{k: int(v) for k, v in loaded.grid().items()})

  @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)])
  def pooled(crops):
    return tf.reduce_mean(signature(images=crops)["latents"], axis=[1, 2])

  return Embedder(pooled, grid, path, keep=loaded)


@functools.lru_cache(maxsize=8)
def _load_path(path: str, step: int | None, grid: GridConfig | None) -> Embedder:
  if tf.io.gfile.isdir(path) and tf.saved_model.contains_saved_model(path):
    if step is not None:
      raise EmbedError(f"{path} is an exported SavedModel: it holds one set of weights, so "
                       f"checkpoint step {step} cannot be chosen. Drop the step, or pass "
                       "the pre-training model_dir.")
    return from_saved_model(path)
  try:
    encoder = encoders.load(path, step)
  except FileNotFoundError as e:
    raise EmbedError(str(e)) from None
  if encoder.pretrain is not None:
    grid = grid or encoder.pretrain.model.grid
  elif grid is None:
    raise EmbedError(f"{path} is a supervised baseline, which has no pre-training patch "
                     "grid: pass grid= (a GridConfig), or a pre-training model_dir.")
  return from_encoder(encoder.model, grid, encoder.source)


def load(source: str | Embedder | keras.Model, *, step: int | None = None,
         grid: GridConfig | None = None) -> Embedder:
  """A model_dir / SavedModel path (cached), an Embedder, or an encoder with `grid`."""
  if isinstance(source, Embedder):
    return source
  if isinstance(source, keras.Model):
    if grid is None:
      raise EmbedError("An encoder object needs grid= (the GridConfig it was pre-trained "
                       "on, e.g. configs.tiny().model.grid).")
    return from_encoder(source, grid)
  if not isinstance(source, (str, os.PathLike)) or not str(source):
    raise EmbedError(f"source={source!r}: pass a pre-training model_dir, an exported "
                     "SavedModel directory, an Embedder, or an encoder with grid=.")
  path = os.fspath(source)
  if "://" not in path:
    path = os.path.abspath(os.path.expanduser(path))
  return _load_path(path, step, grid)


load.cache_clear = _load_path.cache_clear


def check_images(images) -> np.ndarray:
  """images [B, H, W, C] -> the same array, or EmbedError naming what is wrong."""
  x = np.asarray(images)
  if x.ndim != 4:
    hint = " (one image: images[None])" if x.ndim == 3 else ""
    raise EmbedError(f"images must be [B, H, W, C]; got shape {x.shape}{hint}.")
  if not 1 <= x.shape[-1] <= 4 or 0 in x.shape[1:3]:
    raise EmbedError(f"images must be [B, H, W, C] with C in 1..4 (grey, grey+alpha, RGB, "
                     f"RGBA) and H, W > 0; got shape {x.shape}.")
  if x.dtype not in (np.uint8, np.uint16) and not np.issubdtype(x.dtype, np.floating):
    raise EmbedError(f"images of dtype {x.dtype}: pass uint8 (0..255), uint16 or float "
                     "values in [0, 1].")
  if np.issubdtype(x.dtype, np.floating) and x.size:
    low, high = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
      raise EmbedError(f"float images must be in [0, 1]; got values in [{low}, {high}]. "
                       "Divide 0..255 values by 255, or pass them as uint8.")
    if x.dtype != np.float32:
      x = x.astype(np.float32)
  return x


def embed(images, source: str | Embedder | keras.Model, *, step: int | None = None,
          grid: GridConfig | None = None, batch_size: int = 64) -> np.ndarray:
  """images [B, H, W, C] -> embeddings [B, D] float32 (module doc)."""
  x = check_images(images)
  embedder = load(source, step=step, grid=grid)
  _check_batch_size(batch_size)
  if not len(x):
    s = embedder.grid.image_size
    return np.zeros((0, embedder.pooled(tf.zeros([1, s, s, 3])).shape[-1]), np.float32)
  crops = tf.data.Dataset.from_tensor_slices(x).map(embedder.crops).batch(batch_size)
  return np.concatenate([embedder.pooled(c).numpy() for c in crops])


def _check_batch_size(batch_size: int) -> None:
  if batch_size < 1:
    raise EmbedError(f"batch_size={batch_size}: must be at least 1.")


# ----------------------------------------------------------------------------
# Folders and splits -> files

def output_paths(output_dir: str, with_map: bool = False) -> dict[str, str]:
  names = {"npz": NPZ, "csv": CSV, **({"map": MAP} if with_map else {})}
  return {k: os.path.join(output_dir, v) for k, v in names.items()}


def _ours(path: str, kind: str) -> bool:
  """Whether the existing file `path` is one this module (or the map) wrote."""
  try:
    if kind == "npz":
      with np.load(path, allow_pickle=False) as z:
        return "format" in z.files and str(z["format"]) == FORMAT
    if kind == "csv":
      with open(path, newline="") as f:
        return next(csv.reader(f), [])[:4] == [*CSV_HEADER, "d0"]
    return embedding_map.is_map(path)
  except Exception:  # unreadable, another format: not ours
    return False


def check_outputs(output_dir: str, *, overwrite: bool = False, with_map: bool = False) -> None:
  """Refuses, before any work, an output_dir that cannot be written or a file in it
  that this module did not write."""
  records.check_writable(output_dir, "output_dir")
  for kind, path in output_paths(output_dir, with_map).items():
    if os.path.isdir(path):
      raise EmbedError(f"{path} is a directory: move it away or choose another output "
                       "directory.")
    if os.path.lexists(path) and not overwrite and not _ours(path, kind):
      raise EmbedError(f"{path} exists and was not written by cpc_tf.embed: pass "
                       "--overwrite (overwrite=True) to replace it, or choose another "
                       "output directory.")


def _labelled(data: DataConfig) -> bool:
  """Folders: labelled when the split's folder holds sub-folders (one per class)."""
  if data.source != "folder":
    return True
  if not data.path or not os.path.isdir(data.path):
    raise EmbedError(f"Image folder {data.path!r} does not exist or is not a directory.")
  return bool(folders.sub_folders(splits.resolve(data, labelled=False).root))


def embed_dataset(data: DataConfig, source: str | Embedder | keras.Model, *,
                  step: int | None = None, grid: GridConfig | None = None,
                  batch_size: int = 64, on_bad_file: str = "skip",
                  verbose: bool = False) -> Embeddings:
  """Every image of `data` (folder, TFDS or Fashion-MNIST split) -> Embeddings, in
  storage order, without writing anything; `verbose` prints the progress line."""
  _check_batch_size(batch_size)
  embedder = load(source, step=step, grid=grid)
  labelled = _labelled(data)
  source_ = data_lib.load_source(data, labelled=labelled, on_bad_file=on_bad_file,
                                 min_size=embedder.grid.image_size)
  stream = data_lib.ordered_examples(source_, data).map(
      lambda e: (embedder.crops(e["image"]), e["label"], e["id"]),
      num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(1)
  vectors, labels, names = [], [], []
  started = last = time.perf_counter()

  def progress(now):
    print(f"  embedded {len(names)}/{source_.num_examples} images "
          f"({len(names) / max(now - started, 1e-9):.1f} images/s)", flush=True)

  for crops, label, ids in stream:
    vectors.append(embedder.pooled(crops).numpy())
    labels.append(label.numpy())
    names += [i.decode() for i in ids.numpy()]
    now = time.perf_counter()
    if verbose and now - last >= _PROGRESS_SECONDS:
      last = now
      progress(now)
  if not names:
    raise EmbedError(f"No image of {data.source} split {data.split} could be read: "
                     "nothing to embed.")
  if verbose:
    progress(time.perf_counter())
  return Embeddings(np.concatenate(vectors).astype(np.float32),
                    tuple(names), np.concatenate(labels).astype(np.int64),
                    tuple(source_.class_names or ()) if labelled else (),
                    embedder.source)


def embed_data(data: DataConfig, source: str | Embedder | keras.Model, output_dir: str, *,
               step: int | None = None, grid: GridConfig | None = None,
               batch_size: int = 64, overwrite: bool = False, on_bad_file: str = "skip",
               verbose: bool = False) -> Embeddings:
  """`embed_dataset`, then the NPZ and CSV into output_dir (module doc). Files in the
  way that this module did not write are refused before any image is read."""
  _check_batch_size(batch_size)
  check_outputs(output_dir, overwrite=overwrite)
  result = embed_dataset(data, source, step=step, grid=grid, batch_size=batch_size,
                         on_bad_file=on_bad_file, verbose=verbose)
  write(result, output_dir)
  return result


def write(result: Embeddings, output_dir: str) -> None:
  """The CSV, then the NPZ, each atomically (module doc)."""
  paths = output_paths(output_dir)
  records.write_text(paths["csv"], _csv_text(result))
  records.write_text(paths["npz"], _npz_bytes(result), mode="wb")


def read(output_dir: str) -> Embeddings:
  """An `embed_data` output directory -> Embeddings; EmbedError if it is not one."""
  path = output_paths(output_dir)["npz"]
  if not _ours(path, "npz"):
    raise EmbedError(f"{path} is missing or not written by cpc_tf.embed: run "
                     "launch/embed.py (cpc-embed) into that directory first.")
  with np.load(path, allow_pickle=False) as z:
    return Embeddings(z["embeddings"], tuple(str(n) for n in z["names"]), z["labels"],
                      tuple(str(c) for c in z["class_names"]), str(z["encoder"]))


def _class_of(result: Embeddings, label: int) -> str:
  return result.class_names[label] if 0 <= label < len(result.class_names) else ""


def _csv_text(result: Embeddings) -> str:
  out = io.StringIO()
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow([*CSV_HEADER, *(f"d{i}" for i in range(result.embeddings.shape[1]))])
  for name, label, vector in zip(result.names, result.labels, result.embeddings):
    # %.9g: every float32 reads back to the same float32.
    writer.writerow([name, int(label), _class_of(result, int(label)),
                     *(f"{v:.9g}" for v in vector.tolist())])
  return out.getvalue()


def _npz_bytes(result: Embeddings) -> bytes:
  """np.savez's format with a fixed entry date (np.savez stamps the clock)."""
  arrays = {"embeddings": result.embeddings, "names": np.array(result.names, dtype=str),
            "labels": result.labels,
            "class_names": np.array(result.class_names, dtype=str).reshape(-1),
            "encoder": np.array(result.encoder), "format": np.array(FORMAT)}
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as z:
    for key, value in arrays.items():
      with z.open(zipfile.ZipInfo(f"{key}.npy", _FIXED_TIME), "w", force_zip64=True) as f:
        np.lib.format.write_array(f, np.asanyarray(value), allow_pickle=False)
  return buffer.getvalue()


class _CallableModule(types.ModuleType):
  """`cpc_tf.embed(images, source)` is `cpc_tf.embed.embed(images, source)`."""

  def __call__(self, images, source, **kwargs):
    return embed(images, source, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
