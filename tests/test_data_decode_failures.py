"""cpc_tf.data.decode_failures: files that pass the folder scan but fail to decode.

The issue-9 reproductions: a folder of 1-bit BMPs hung pre-training at step 0
forever; PNGs with corrupt data but an intact end marker were dropped unnamed,
every epoch; 8-bit palette BMPs came out as grey palette indices. The hang
checks run in a subprocess with a timeout, since a hung tf.data iterator
cannot be stopped from inside the process.
"""

import io
import logging
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from cpc_tf.configs import AugmentConfig, DataConfig, GridConfig
from cpc_tf.data import DataError, decode_failures, efficient_eval_dataset, pretrain_dataset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OFF = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                    inception_color_p=0.0, grayscale_p=0.0)
SMALL = GridConfig(image_size=24, patch_size=8, stride=8, resize_to=28)
HANG_TIMEOUT = 180  # s; a healthy run needs ~20 s (TF import), even on a busy machine


def _rgb(seed, size=(30, 20)):
  rng = np.random.default_rng(seed)
  return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8))


def _corrupt_png(path, seed):
  """A PNG whose IDAT data is zeroed but whose IEND chunk is intact: passes the scan."""
  buffer = io.BytesIO()
  _rgb(seed).save(buffer, "PNG")
  data = bytearray(buffer.getvalue())
  start = data.find(b"IDAT") + 10
  data[start:start + 30] = b"\x00" * 30
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(bytes(data))


def _folder(root, good=4, corrupt=1, one_bit=0):
  os.makedirs(f"{root}/a", exist_ok=True)
  for i in range(good):
    _rgb(i).save(f"{root}/a/good{i}.png")
  for i in range(corrupt):
    _corrupt_png(f"{root}/a/bad{i}.png", 100 + i)
  for i in range(one_bit):
    _rgb(200 + i).convert("1").save(f"{root}/a/mono{i}.bmp")
  return DataConfig(source="folder", path=str(root), test_fraction=0.0, shuffle_buffer=8)


def _run(script):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  try:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=HANG_TIMEOUT)
  except subprocess.TimeoutExpired:
    pytest.fail(f"the input pipeline hung (no result within {HANG_TIMEOUT} s)")


PRETRAIN = """
  from cpc_tf.configs import AugmentConfig, DataConfig, GridConfig
  from cpc_tf.data import pretrain_dataset
  off = AugmentConfig(randaugment=False, elastic_p=0.0, histogram_p=0.0,
                      inception_color_p=0.0, grayscale_p=0.0)
  grid = GridConfig(image_size=24, patch_size=8, stride=8, resize_to=28)
  data = DataConfig(source="folder", path={path!r}, test_fraction=0.0)
  for _, batch in zip(range(3), pretrain_dataset(data, grid, off, 2, seed=0)):
    print("batch", tuple(batch.shape), flush=True)
"""


def test_one_bit_bmp_folder_pretrains_instead_of_hanging(tmp_path):
  _folder(tmp_path, good=0, corrupt=0, one_bit=3)
  proc = _run(PRETRAIN.format(path=str(tmp_path)))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert proc.stdout.count("batch (2, 3, 3, 8, 8, 3)") == 3


def test_folder_with_nothing_decodable_stops_with_a_clear_error(tmp_path):
  _folder(tmp_path, good=0, corrupt=3)
  proc = _run(PRETRAIN.format(path=str(tmp_path)))
  assert proc.returncode != 0 and "batch" not in proc.stdout
  assert f"No decodable image in {tmp_path}" in proc.stderr, proc.stderr[-3000:]
  assert "Invalid PNG data" in proc.stderr and "Re-encode" in proc.stderr


def test_decode_failure_is_named_once_and_counted_across_epochs(tmp_path, caplog):
  data = _folder(tmp_path, good=4, corrupt=1)
  with caplog.at_level(logging.WARNING):
    ds = efficient_eval_dataset(data, 8, image_size=16)
    counts = [int(sum(len(y) for _, y in ds)) for _ in range(3)]  # three epochs
    training = pretrain_dataset(data, SMALL, OFF, 2, seed=0)  # a second pipeline
    for _ in zip(range(6), training):
      pass
  assert counts == [4, 4, 4]
  named = [r.getMessage() for r in caplog.records if "bad0.png" in r.getMessage()]
  assert len(named) == 1 and "failed to decode" in named[0], named
  assert "1 file(s) of" in named[0]
  assert list(decode_failures.failures(str(tmp_path))) == ["a/bad0.png"]
  assert "Invalid PNG data" in decode_failures.failures(str(tmp_path))["a/bad0.png"]


def test_decode_failure_raises_naming_the_file_when_asked(tmp_path):
  data = _folder(tmp_path, good=2, corrupt=1)
  with pytest.raises(DataError, match=r"(?s)a/bad0\.png failed to decode.*on_bad_file='skip'"):
    list(efficient_eval_dataset(data, 8, image_size=16, on_bad_file="fail"))
  # Found inside the pipeline (the probe stops at the first good file): still named.
  late = _folder(tmp_path / "late", good=2, corrupt=0)
  _corrupt_png(str(tmp_path / "late" / "a" / "z.png"), 7)
  ds = efficient_eval_dataset(late, 8, image_size=16, on_bad_file="fail")
  with pytest.raises(Exception, match=r"(?s)a/z\.png failed to decode.*on_bad_file='skip'"):
    list(ds)


def test_palette_and_one_bit_bmp_folders_decode_in_colour(tmp_path):
  """The same pixels stored as palette BMP, 1-bit BMP and RGB PNG give one batch row."""
  palette = _rgb(0).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
  mono = _rgb(1).convert("1")
  os.makedirs(tmp_path / "a")
  palette.save(tmp_path / "a" / "1_palette.bmp")
  palette.convert("RGB").save(tmp_path / "a" / "2_palette_rgb.png")
  mono.save(tmp_path / "a" / "3_mono.bmp")
  mono.convert("RGB").save(tmp_path / "a" / "4_mono_rgb.png")
  data = DataConfig(source="folder", path=str(tmp_path), test_fraction=0.0)
  x, _ = next(iter(efficient_eval_dataset(data, 4, image_size=16)))
  x = x.numpy()
  assert np.abs(x[0, ..., 0] - x[0, ..., 1]).max() > 0.1  # colours, not grey indices
  np.testing.assert_allclose(x[0], x[1], atol=1e-6)
  np.testing.assert_allclose(x[2], x[3], atol=1e-6)


def test_max_failed_attempts_bounds_a_source_split_across_pipelines(tmp_path, monkeypatch):
  """A shard sees only part of the files: the in-a-row bound stops it too."""
  monkeypatch.setattr(decode_failures, "MAX_FAILED_ATTEMPTS", 5)
  decoder = decode_failures.FolderDecoder(str(tmp_path), num_files=100, on_bad_file="skip")
  _folder(tmp_path, good=0, corrupt=2)
  import tensorflow as tf
  with pytest.raises(DataError, match="No decodable image.*5 decode attempt"):
    for i in range(5):
      decoder._decode(tf.constant(str(tmp_path / "a" / f"bad{i % 2}.png")),
                      tf.constant(f"a/bad{i % 2}.png"))
