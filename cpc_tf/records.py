"""Run records on disk: the one atomic writer, JSON reading that names its file,
and the start-up check that an output directory can be written.

Every JSON file the package writes (config.json, config_changes.json,
results.json, subset.json, done.json, features info, ablation plans) goes
through `write_json` / `write_text`: the text goes to `<path>.tmp`, then one
rename replaces `path`, so a reader (or a resumed run) sees the old file or
the new one, never half of one, even when the disk fills up or the run is
killed mid-write. Local paths and gs:// alike (tf.io.gfile).
"""

from __future__ import annotations

import json
import os
import re

import tensorflow as tf


class WriteError(OSError):
  """A file of a run could not be written (disk full, permissions, a file in the way)."""


def write_text(path: str, text: str, mode: str = "w") -> None:
  """Atomic: a reader never sees half a file, even if the run is killed."""
  tmp = path + ".tmp"
  try:
    tf.io.gfile.makedirs(os.path.dirname(path) or ".")
    with tf.io.gfile.GFile(tmp, mode) as f:
      f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except (OSError, tf.errors.OpError) as e:
    raise WriteError(f"could not write {path} ({reason(e)}); the previous version, if "
                     "any, is untouched. Free some space, fix the permissions or move "
                     "what is in the way, then rerun the same command.") from e


def write_json(path: str, doc) -> None:
  """`doc` as indented, key-sorted JSON, written atomically."""
  write_text(path, json.dumps(doc, indent=2, sort_keys=True))


def read_json(path: str, way_out: str = ""):
  """The parsed file; ValueError naming the file (and `way_out`) when it is not JSON."""
  with tf.io.gfile.GFile(path) as f:
    text = f.read()
  try:
    return json.loads(text)
  except json.JSONDecodeError as e:
    size = f"{len(text)} bytes" if text else "empty"
    raise ValueError(f"{path} is damaged ({size}, not valid JSON: {e}). "
                     f"{way_out}".rstrip()) from e


def check_writable(directory: str, flag: str) -> None:
  """Proves a file can be written in `directory`, leaving no trace behind.

  Binaries call it before any work, so a wrong --output_dir fails in a second
  with one line instead of a traceback after minutes of training. Directories
  it creates for the probe are removed again, so a run refused afterwards (bad
  flags) writes nothing. ValueError names the flag, the problem and the fix.
  """
  if not directory:
    raise ValueError(f"{flag} is empty: name a directory to write to.")
  if "://" not in directory:
    blocker = _regular_file_above(directory)
    if blocker is not None:
      raise ValueError(
          f"{flag}={directory} lies under {blocker}, which is a regular file, not a "
          f"directory: choose another {flag}, or move that file away.")
  created = _missing_directories(directory) if "://" not in directory else []
  probe = os.path.join(directory, f".write-test-{os.getpid()}")
  try:
    tf.io.gfile.makedirs(directory)
    with tf.io.gfile.GFile(probe, "w") as f:
      f.write("")
    tf.io.gfile.remove(probe)
  except (OSError, tf.errors.OpError) as e:
    raise ValueError(f"{flag}={directory} is not writable ({reason(e)}): choose a "
                     f"directory you can write to, or fix its permissions.") from None
  finally:
    for path in created:  # deepest first
      try:
        os.rmdir(path)
      except OSError:
        break


def _missing_directories(directory: str) -> list[str]:
  """The directories that creating local `directory` would make, deepest first."""
  path = os.path.abspath(os.path.expanduser(directory))
  missing = []
  while not os.path.lexists(path):
    missing.append(path)
    parent = os.path.dirname(path)
    if parent == path:
      break
    path = parent
  return missing


def _regular_file_above(directory: str) -> str | None:
  """The first existing path from `directory` upwards, when it is not a directory."""
  path = os.path.abspath(os.path.expanduser(directory))
  while True:
    if os.path.lexists(path):
      return None if os.path.isdir(path) else path
    parent = os.path.dirname(path)
    if parent == path:
      return None
    path = parent


def reason(error: Exception) -> str:
  """The OS's words for a failed file operation, without TF's stack."""
  if isinstance(error, tf.errors.OpError):  # drop TF's node name and op tag
    text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]", "", error.message)
    return text.splitlines()[0] if text else type(error).__name__
  return error.strerror or str(error) if isinstance(error, OSError) else str(error)
