"""Image files that pass the folder scan but fail to decode inside tf.data.

The scan (`folders.check_file`) reads only a file's header and last bytes, so a
PNG with corrupt data but an intact IEND chunk passes it and fails later, in
the input pipeline. Folder images are therefore decoded in `tf.py_function`
by `FolderDecoder`, which catches the failure, names the file once per process
(not once per epoch: a file that failed is not decoded again), counts it, and
lets the pipeline drop it. A source that yields no decodable image stops with
a DataError instead of looping over its files forever: `probe` decodes files
in order before the pipeline is built until one works (one decode for a
healthy folder), so an all-bad folder raises in the caller's thread; inside
the pipeline a source stops when every one of its files has failed, or after
MAX_FAILED_ATTEMPTS failures in a row (the bound for sources whose files are
spread over several input pipelines).
"""

from __future__ import annotations

import logging
import os
import re
import threading

import tensorflow as tf

from cpc_tf.data import images
from cpc_tf.data.errors import DataError

log = logging.getLogger(__name__)

MAX_FAILED_ATTEMPTS = 1000
_LOCK = threading.Lock()
_FAILED: dict[str, dict[str, str]] = {}  # folder -> {file id: reason}, per process


def failures(root: str) -> dict[str, str]:
  """{file id: reason} of the files under `root` that failed to decode so far."""
  with _LOCK:
    return dict(_FAILED.get(os.path.normpath(root), {}))


class FolderDecoder:
  """file path + id -> ([H, W, 3] float32, ok) for one folder source (module doc)."""

  def __init__(self, root: str, num_files: int, on_bad_file: str):
    self.root = os.path.normpath(root)
    self.num_files = num_files
    self.on_bad_file = on_bad_file
    self._failed_here: set[str] = set()  # ids of this source, for the all-failed stop
    self._in_a_row = 0

  def __call__(self, path: tf.Tensor, example_id: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """Graph-side: [] string path, [] string id -> ([H, W, 3] float32, [] bool)."""
    image, ok = tf.py_function(self._decode, [path, example_id], [tf.float32, tf.bool])
    image.set_shape([None, None, None])
    ok.set_shape([])
    return images.to_rgb(image), ok

  def _decode(self, path, example_id):
    image = self.try_decode(path.numpy().decode(), example_id.numpy().decode())
    if image is None:
      return tf.zeros([1, 1, 3], tf.float32), tf.constant(False)
    return image, tf.constant(True)

  def try_decode(self, path: str, key: str) -> tf.Tensor | None:
    """Eager: `images.decode_file` of the file, or None after recording the failure
    (raises to stop)."""
    with _LOCK:
      reason = _FAILED.get(self.root, {}).get(key)
    if reason is None:
      try:
        with open(path, "rb") as f:
          image = images.decode_file(f.read())
        with _LOCK:
          self._in_a_row = 0
        return image
      except Exception as e:  # TF, PIL and OS errors alike: this file is unusable
        reason = f"{type(e).__name__}: {_first_line(e)}"
    # A file that failed before is not decoded again: no new log line, no retry.
    self._record(key, reason)
    return None

  def probe(self, paths: list[str], keys: list[str]) -> None:
    """Decodes files in order until one works; raises DataError if none does.

    Run before the pipeline is built, so a folder with nothing decodable fails
    here, in the caller's thread, with a plain DataError; the in-pipeline stop
    remains for shards that hold only bad files. Costs one decode when the
    first file is fine.
    """
    with tf.init_scope():  # eager even if called while a graph is being built
      for path, key in zip(paths, keys):
        if self.try_decode(path, key) is not None:
          return

  def _record(self, key: str, reason: str) -> None:
    where = os.path.join(self.root, key)
    if self.on_bad_file == "fail":
      raise DataError(f"{where} failed to decode ({reason}). Delete or re-encode it, or "
                      "pass on_bad_file='skip' to train without it.")
    with _LOCK:
      named = _FAILED.setdefault(self.root, {})
      first = key not in named
      named[key] = reason
      self._failed_here.add(key)
      self._in_a_row += 1
      total, here, in_a_row = len(named), len(self._failed_here), self._in_a_row
    if first:
      log.warning("Skipping %s: it passed the start-up scan but failed to decode (%s); "
                  "%d file(s) of %s failed to decode so far. It stays skipped in every "
                  "later epoch; delete or re-encode it.", where, reason, total, self.root)
    if here >= self.num_files or in_a_row >= MAX_FAILED_ATTEMPTS:
      raise DataError(
          f"No decodable image in {self.root}: {in_a_row} decode attempt(s) in a row "
          f"failed, {here} of the {self.num_files} file(s) read (last: {key}: {reason}). "
          "Re-encode the files as PNG or JPEG, or point DataConfig.path at another folder.")


def _first_line(error: Exception) -> str:
  """The message without TF's function-node prefix and op suffix, one line."""
  text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", str(error))
  text = re.sub(r"\s*\[Op:\w+\].*", "", text, flags=re.S).strip().splitlines()
  return text[0][:200] if text else ""
