"""A user's image folder -> a validated list of files (and class labels).

Glossary: N image files kept, K classes. Two layouts:
  unlabelled (pre-training): every image under `root`, at any depth;
  labelled (classification): one sub-folder of `root` per class, images at any
    depth below it; class index = position of the folder name in sorted order,
    so train and validation folders with the same sub-folders agree.

Every candidate file (extension in `EXTENSIONS`, case-insensitive) is checked once
with PIL before training: its header must parse, its format must be one
TensorFlow decodes (JPEG, PNG, BMP, GIF), and it must not be truncated. The
truncation check reads only the file's last bytes (JPEG EOI marker, PNG IEND
chunk, GIF trailer) and decodes the whole file only when those look wrong, so a
scan of ImageNet costs a header read per file. Bad files are skipped with a
warning and a final count, or raise (`on_bad_file="fail"`).

Images smaller than the crop are upscaled by the pipelines (every pipeline
resizes before it crops); the scan counts them and says so in a warning.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import logging
import os

from PIL import Image

from cpc_tf.data.errors import DataError

log = logging.getLogger(__name__)

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
ON_BAD_FILE = ("skip", "fail")
_TF_FORMATS = ("JPEG", "PNG", "BMP", "GIF")
# Well-formed files end with these bytes; anything else gets a full decode.
_TRAILERS = {"JPEG": b"\xff\xd9", "PNG": b"IEND\xaeB`\x82", "GIF": b";"}
_WARN_LIMIT = 20  # bad files named one by one before the summary takes over
_REPORTED: set = set()  # (scan, min_size) already logged: one warning per process


@dataclasses.dataclass(frozen=True)
class FolderScan:
  """Result of `scan`: kept files, their labels, and what was left out and why."""

  root: str
  files: tuple[str, ...]  # paths relative to root, "/"-separated: the example ids
  labels: tuple[int, ...]  # class index per file; -1 when unlabelled
  class_names: tuple[str, ...] | None
  bad: tuple[tuple[str, str], ...]  # (relative path, reason)
  sizes: tuple[tuple[int, int], ...]  # (height, width) per kept file

  def paths(self) -> list[str]:
    return [os.path.join(self.root, f) for f in self.files]

  def count_smaller_than(self, size: int) -> int:
    return sum(1 for h, w in self.sizes if min(h, w) < size)


def check_file(path: str) -> tuple[str | None, tuple[int, int]]:
  """-> (reason the file is unusable or None, (height, width))."""
  try:
    with Image.open(path) as im:
      fmt, (w, h) = im.format, im.size
      if fmt not in _TF_FORMATS:
        return (f"{fmt} is not a format TensorFlow decodes; re-save it as PNG or "
                "JPEG"), (h, w)
      trailer = _TRAILERS.get(fmt)
      if trailer is None or not _ends_with(path, trailer):
        im.load()  # full decode: raises on truncated / corrupt data
  except Exception as e:  # PIL raises many types; each means "cannot use this file"
    return f"not a readable image ({type(e).__name__}: {e}); delete or re-encode it", (0, 0)
  return None, (h, w)


def _ends_with(path: str, trailer: bytes) -> bool:
  with open(path, "rb") as f:
    f.seek(0, os.SEEK_END)
    f.seek(max(0, f.tell() - 64))
    tail = f.read().rstrip(b"\x00\r\n ")  # some writers pad after the marker
  return tail.endswith(trailer)


def _list_images(directory: str) -> list[str]:
  found = []
  for dirpath, dirnames, filenames in os.walk(directory, followlinks=True):
    dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
    found.extend(os.path.join(dirpath, f) for f in sorted(filenames)
                 if not f.startswith(".") and f.lower().endswith(EXTENSIONS))
  return found


def sub_folders(root: str) -> tuple[str, ...]:
  """Sorted names of the non-hidden directories directly under `root`."""
  return tuple(sorted(d for d in os.listdir(root)
                      if not d.startswith(".") and os.path.isdir(os.path.join(root, d))))


def class_files(root: str) -> tuple[tuple[str, int], ...]:
  """(id, class index) of every candidate image of a labelled folder, unchecked.

  Only lists names (no PIL), so a split can be drawn without a full scan.
  """
  out = []
  for index, name in enumerate(sub_folders(root)):
    out += [(os.path.relpath(p, root).replace(os.sep, "/"), index)
            for p in _list_images(os.path.join(root, name))]
  return tuple(out)


@functools.lru_cache(maxsize=16)
def scan(root: str, labelled: bool, workers: int = 16,
         classes: tuple[str, ...] | None = None) -> FolderScan:
  """Lists and checks the images under `root` (cached per process).

  `classes` (labelled only) fixes the class names and their order, e.g. to
  those of the training folder when `root` is its test folder: a sub-folder
  not among them raises, a missing one is an empty class.
  Raises DataError if `root` is missing or holds no image files at all.
  """
  if not os.path.isdir(root):
    raise DataError(f"Image folder {root!r} does not exist or is not a directory; "
                    "set DataConfig.path to a folder of images.")
  if labelled:
    class_names = sub_folders(root)
    if classes is not None:
      unknown = sorted(set(class_names) - set(classes))
      if unknown:
        raise DataError(
            f"Image folder {root!r} has class folder(s) {', '.join(unknown)} that the "
            f"training folder lacks (its classes: {', '.join(classes)}); rename or "
            "remove them, or add them to the training folder.")
      class_names = tuple(classes)
    if not class_names:
      raise DataError(
          f"Image folder {root!r} has no class sub-folders. Classification needs "
          "one sub-folder per class (root/<class>/<image>), e.g. root/cat/1.jpg.")
    candidates, labels = [], []
    for index, name in enumerate(class_names):
      found = (_list_images(os.path.join(root, name))
               if os.path.isdir(os.path.join(root, name)) else [])
      if not found:
        log.warning("Class folder %s holds no images (%s); class %d stays empty.",
                    os.path.join(root, name), "/".join(EXTENSIONS), index)
      candidates += found
      labels += [index] * len(found)
    loose = [f for f in os.listdir(root) if f.lower().endswith(EXTENSIONS)]
    if loose:
      log.warning("Ignoring %d image(s) directly in %s (e.g. %s): classification "
                  "reads only root/<class>/... .", len(loose), root, loose[0])
  else:
    class_names = None
    candidates = _list_images(root)
    labels = [-1] * len(candidates)
  if not candidates:
    raise DataError(f"Image folder {root!r} holds no images with extensions "
                    f"{', '.join(EXTENSIONS)} (searched recursively). Add images or "
                    "fix DataConfig.path.")

  with concurrent.futures.ThreadPoolExecutor(workers) as pool:  # I/O bound
    checks = list(pool.map(check_file, candidates))
  files, kept_labels, bad, sizes = [], [], [], []
  for path, label, (reason, size) in zip(candidates, labels, checks):
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    if reason is None:
      files.append(rel)
      kept_labels.append(label)
      sizes.append(size)
    else:
      bad.append((rel, reason))
  return FolderScan(root, tuple(files), tuple(kept_labels), class_names,
                    tuple(bad), tuple(sizes))


def report(folder: FolderScan, on_bad_file: str, min_size: int = 0) -> None:
  """Logs (skip) or raises (fail) about bad files; warns about upscaled images."""
  if on_bad_file not in ON_BAD_FILE:
    raise DataError(f"on_bad_file={on_bad_file!r}; choose one of {ON_BAD_FILE}.")
  if not folder.files:
    raise DataError(f"Every image file in {folder.root} is unusable ({len(folder.bad)} "
                    f"bad, e.g. {folder.bad[0][0]}: {folder.bad[0][1]}); nothing to "
                    "train on.")
  # num_examples, class_names and every input pipeline load the same folder.
  if on_bad_file == "skip" and (folder, min_size) in _REPORTED:
    return
  _REPORTED.add((folder, min_size))
  if folder.bad:
    listing = "\n".join(f"  {os.path.join(folder.root, f)}: {why}"
                        for f, why in folder.bad[:_WARN_LIMIT])
    more = len(folder.bad) - _WARN_LIMIT
    if more > 0:
      listing += f"\n  ... and {more} more"
    if on_bad_file == "fail":
      raise DataError(
          f"{len(folder.bad)} unusable file(s) in {folder.root}:\n{listing}\n"
          "Delete or re-encode them, or pass on_bad_file='skip' to train without them.")
    log.warning("Skipped %d of %d file(s) in %s:\n%s", len(folder.bad),
                len(folder.bad) + len(folder.files), folder.root, listing)
  small = folder.count_smaller_than(min_size)
  if small:
    log.warning("%d of %d image(s) in %s are smaller than %d px on a side and will "
                "be upscaled.", small, len(folder.files), folder.root, min_size)
  by_class = collections.Counter(folder.labels)
  log.info("Image folder %s: %d image(s)%s.", folder.root, len(folder.files),
           f" in {len(by_class)} class(es)" if folder.class_names else "")
