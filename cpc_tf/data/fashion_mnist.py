"""Fashion-MNIST, the embedded default data, read offline from idx files.

Glossary: N examples, H = W = 28 pixels, grey (one channel). `load` returns
uint8 images [N, 28, 28, 1] and int64 labels [N]; pipelines tile the grey channel
to 3 (see `images.to_rgb`). The stable per-example id is the index in the split.

The Debian package `dataset-fashion-mnist` installs the four idx files in
`DEFAULT_DIR`. Where they are absent (and no `path` is given), the TFDS
`fashion_mnist` builder is used instead; it downloads when a network exists.
"""

from __future__ import annotations

import functools
import gzip
import os

import numpy as np

from cpc_tf.data.errors import DataError

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal",
               "Shirt", "Sneaker", "Bag", "Ankle boot")
SPLITS = {"train": "train", "test": "t10k"}  # split -> idx file prefix
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"),
               0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str) -> np.ndarray:
  """Reads one idx file (gzipped or not) into an array of its stored shape."""
  opener = gzip.open if path.endswith(".gz") else open
  try:
    with opener(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError) as e:
    raise DataError(f"Cannot read idx file {path}: {e}. Re-install the package "
                    "dataset-fashion-mnist or point DataConfig.path at intact files.") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
    raise DataError(f"{path} is not an idx file (bad magic number {raw[:4]!r}).")
  dtype, rank = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
  shape = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(rank))
  body = raw[4 + 4 * rank:]
  if len(body) != int(np.prod(shape)) * dtype.itemsize:
    raise DataError(f"{path} is truncated: header says shape {shape}, file holds "
                    f"{len(body)} bytes of data. Re-install dataset-fashion-mnist.")
  return np.frombuffer(body, dtype).reshape(shape)


def _files(split: str, directory: str) -> tuple[str, str] | None:
  """(images, labels) paths of a split in `directory`, gzipped or not; None if absent."""
  prefix = SPLITS[split]
  for suffix in (".gz", ""):
    images = os.path.join(directory, f"{prefix}-images-idx3-ubyte{suffix}")
    labels = os.path.join(directory, f"{prefix}-labels-idx1-ubyte{suffix}")
    if os.path.exists(images) and os.path.exists(labels):
      return images, labels
  return None


@functools.lru_cache(maxsize=4)
def load(split: str = "train", path: str | None = None,
         data_dir: str | None = None) -> tuple[np.ndarray, np.ndarray]:
  """-> (images uint8 [N, 28, 28, 1], labels int64 [N]); cached, read-only arrays.

  `path` is a directory of idx files (default `DEFAULT_DIR`); `data_dir` is the
  TFDS data dir used only by the fallback.
  """
  if split not in SPLITS:
    raise DataError(f"Fashion-MNIST has no split {split!r}; available splits: "
                    f"{sorted(SPLITS)}.")
  files = _files(split, path or DEFAULT_DIR)
  if files is None and path is not None:
    raise DataError(
        f"No Fashion-MNIST idx files for split {split!r} in {path}: expected "
        f"{SPLITS[split]}-images-idx3-ubyte[.gz] and {SPLITS[split]}-labels-idx1-ubyte[.gz]. "
        "Fix DataConfig.path, or leave it unset to use the Debian package's files.")
  if files is None:
    return _load_tfds(split, data_dir)
  images, labels = read_idx(files[0]), read_idx(files[1])
  if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
    raise DataError(f"{files[0]} and {files[1]} disagree: images {images.shape}, "
                    f"labels {labels.shape}.")
  return images[..., None], labels.astype(np.int64)


def _load_tfds(split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
  import tensorflow_datasets as tfds  # only the fallback needs it
  try:
    # Batches of 10k, not batch_size=-1, which needs a known cardinality.
    batches = list(tfds.as_numpy(tfds.load(
        "fashion_mnist", split=split, data_dir=data_dir, as_supervised=True).batch(10_000)))
  except Exception as e:  # no network, no prepared data: say both ways out
    raise DataError(
        f"Fashion-MNIST files are not in {DEFAULT_DIR} and the TFDS fallback failed "
        f"({type(e).__name__}: {e}). Install the Debian package dataset-fashion-mnist, "
        "set DataConfig.path to a directory holding the idx files, or run with "
        "network access so TFDS can download fashion_mnist.") from e
  images = np.concatenate([b[0] for b in batches])
  return images, np.concatenate([b[1] for b in batches]).astype(np.int64)
