"""cpc_tf.data.fashion_mnist: the Debian package's idx files, read offline."""

import gzip
import os

import numpy as np
import pytest

from cpc_tf.data import DataError, fashion_mnist

HAVE_FILES = os.path.exists(os.path.join(fashion_mnist.DEFAULT_DIR, "t10k-images-idx3-ubyte.gz"))


@pytest.mark.skipif(not HAVE_FILES, reason="Debian package dataset-fashion-mnist not installed")
def test_real_test_split_shapes_and_labels():
  images, labels = fashion_mnist.load("test")
  assert images.shape == (10000, 28, 28, 1) and images.dtype == np.uint8
  assert labels.shape == (10000,) and labels.dtype == np.int64
  assert set(np.unique(labels)) == set(range(len(fashion_mnist.CLASS_NAMES)))
  assert images.max() == 255 and images.min() == 0


def _write_idx(path, array, gz=True):
  codes = {np.uint8: 0x08, np.int32: 0x0C}
  header = bytes([0, 0, codes[array.dtype.type], array.ndim])
  header += b"".join(d.to_bytes(4, "big") for d in array.shape)
  body = array.astype(array.dtype.newbyteorder(">")).tobytes()
  with (gzip.open if gz else open)(path, "wb") as f:
    f.write(header + body)


def test_reads_plain_and_gzipped_idx(tmp_path):
  images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
  _write_idx(str(tmp_path / "t10k-images-idx3-ubyte"), images, gz=False)
  _write_idx(str(tmp_path / "t10k-labels-idx1-ubyte"), np.array([1, 2, 3], np.uint8), gz=False)
  got, labels = fashion_mnist.load("test", str(tmp_path))
  np.testing.assert_array_equal(got[..., 0], images)
  np.testing.assert_array_equal(labels, [1, 2, 3])
  _write_idx(str(tmp_path / "counts.gz"), np.array([[7, -1]], np.int32))
  assert fashion_mnist.read_idx(str(tmp_path / "counts.gz")).tolist() == [[7, -1]]


def test_bad_files_and_splits_raise(tmp_path):
  with pytest.raises(DataError, match="available splits: \\['test', 'train'\\]"):
    fashion_mnist.load("validation")
  with pytest.raises(DataError, match="No Fashion-MNIST idx files.*DataConfig.path"):
    fashion_mnist.load("train", str(tmp_path))
  bad = tmp_path / "bad.gz"
  with gzip.open(bad, "wb") as f:
    f.write(b"hello world")
  with pytest.raises(DataError, match="not an idx file"):
    fashion_mnist.read_idx(str(bad))
  short = tmp_path / "short"
  _write_idx(str(short), np.zeros((4, 2), np.uint8), gz=False)
  short.write_bytes(short.read_bytes()[:-3])
  with pytest.raises(DataError, match="truncated"):
    fashion_mnist.read_idx(str(short))
