"""A PASCAL VOC folder as users download it -> checked examples and a tf.data source.

Layout: ROOT/VOC2007/{Annotations/ID.xml, ImageSets/Main/SPLIT.txt, JPEGImages/ID.jpg}
(ROOT may also be the VOC2007 folder itself). Glossary: M objects of an image.
Annotations are read with the standard library's XML parser. VOC boxes are
1-based inclusive pixels; they become (ymin, xmin, ymax, xmax) fractions of the
image: ((ymin - 1) / H, (xmin - 1) / W, ymax / H, xmax / W), TFDS's convention.

Problems are either fatal (on_bad="fail", a DataError naming the file and the
fix) or skipped and counted (on_bad="skip"): an unreadable or malformed
annotation or a missing JPEG skips the image; an unknown class name or a box
outside the image (or empty) skips the object. `VocSplit.skipped` holds the counts.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import xml.etree.ElementTree as ET

import numpy as np
import tensorflow as tf

from cpc_tf.data.errors import DataError

log = logging.getLogger(__name__)

CLASS_NAMES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
               "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
               "sheep", "sofa", "train", "tvmonitor")
ON_BAD = ("fail", "skip")


@dataclasses.dataclass(frozen=True)
class VocExample:
  id: str
  image_path: str
  height: int
  width: int
  boxes: np.ndarray  # [M, 4] float32 fractions (ymin, xmin, ymax, xmax)
  labels: np.ndarray  # [M] int64 index into CLASS_NAMES
  difficult: np.ndarray  # [M] bool


@dataclasses.dataclass(frozen=True)
class VocSplit:
  examples: tuple[VocExample, ...]
  skipped: dict  # reason -> count (images or objects, as the reason says)

  @property
  def num_boxes(self) -> int:
    return int(sum(len(e.labels) for e in self.examples))


class _Bad(Exception):
  """One problem with one file; becomes a DataError or a count."""

  def __init__(self, reason: str, detail: str):
    super().__init__(detail)
    self.reason = reason


def _year_dir(root: str, year: str) -> str:
  for candidate in (os.path.join(root, f"VOC{year}"), root):
    if os.path.isdir(os.path.join(candidate, "ImageSets", "Main")):
      return candidate
  raise DataError(f"{root!r} is not a VOCdevkit folder: no VOC{year}/ImageSets/Main in it. "
                  f"Pass the folder that holds VOC{year} (as extracted from the VOC tar files).")


def read_split(root: str, split: str = "trainval", year: str = "2007",
               on_bad: str = "fail") -> VocSplit:
  """Reads ImageSets/Main/SPLIT.txt and every listed annotation -> VocSplit."""
  if on_bad not in ON_BAD:
    raise DataError(f"on_bad={on_bad!r}; choose one of {ON_BAD}.")
  base = _year_dir(root, year)
  listing = os.path.join(base, "ImageSets", "Main", f"{split}.txt")
  if not os.path.isfile(listing):
    raise DataError(f"No split file {listing}; VOC{year} splits are train, val, trainval, test "
                    f"(the test set is a separate download).")
  with open(listing) as f:
    ids = [line.split()[0] for line in f if line.strip()]
  if not ids:
    raise DataError(f"{listing} lists no images.")
  skipped = collections.Counter()
  examples = []
  for image_id in ids:
    try:
      examples.append(_read_example(base, image_id, on_bad, skipped))
    except _Bad as bad:
      if on_bad == "fail":
        raise DataError(f"{bad} Fix or remove the file, or pass on_bad='skip' to go on "
                        f"without it (skips are counted).") from None
      skipped[bad.reason] += 1
  if skipped:
    log.warning("VOC %s/%s: skipped %s.", base, split, dict(skipped))
  result = VocSplit(tuple(examples), dict(skipped))
  if not result.examples:
    raise DataError(f"No usable image in {listing} (skipped: {dict(skipped)}).")
  if result.num_boxes == 0:
    raise DataError(f"{listing}: none of its {len(examples)} images has a box; detection "
                    f"needs annotated objects (skipped: {dict(skipped)}).")
  return result


def _read_example(base: str, image_id: str, on_bad: str, skipped) -> VocExample:
  xml_path = os.path.join(base, "Annotations", f"{image_id}.xml")
  image_path = os.path.join(base, "JPEGImages", f"{image_id}.jpg")
  if not os.path.isfile(image_path):
    raise _Bad("missing image", f"Image {image_path} is missing.")
  try:
    tree = ET.parse(xml_path)
  except (OSError, ET.ParseError) as e:
    raise _Bad("malformed annotation", f"Annotation {xml_path} cannot be read: {e}.") from None
  node = tree.getroot()
  try:
    width = int(float(node.findtext("size/width")))
    height = int(float(node.findtext("size/height")))
  except (TypeError, ValueError):
    raise _Bad("malformed annotation",
               f"Annotation {xml_path} has no numeric size/width and size/height.") from None
  if width <= 0 or height <= 0:
    raise _Bad("malformed annotation", f"Annotation {xml_path} gives size {width}x{height}.")
  boxes, labels, difficult = [], [], []
  for k, obj in enumerate(node.findall("object")):
    try:
      box, label, hard = _read_object(obj, width, height)
    except _Bad as bad:
      if on_bad == "fail":
        raise _Bad(bad.reason, f"Annotation {xml_path}, object {k}: {bad}") from None
      skipped[bad.reason] += 1
      continue
    boxes.append(box)
    labels.append(label)
    difficult.append(hard)
  return VocExample(image_id, image_path, height, width,
                    np.asarray(boxes, np.float32).reshape(-1, 4),
                    np.asarray(labels, np.int64), np.asarray(difficult, bool))


def _read_object(obj, width: int, height: int):
  name = (obj.findtext("name") or "").strip()
  if name not in CLASS_NAMES:
    raise _Bad("unknown class", f"class {name!r} is not one of the 20 VOC classes.")
  try:
    xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{k}"))
                              for k in ("xmin", "ymin", "xmax", "ymax"))
  except (TypeError, ValueError):
    raise _Bad("malformed box", "bndbox lacks a numeric xmin, ymin, xmax or ymax.") from None
  if not (1 <= xmin <= xmax <= width and 1 <= ymin <= ymax <= height):
    raise _Bad("box outside image",
               f"box x {xmin}..{xmax}, y {ymin}..{ymax} is empty or outside the "
               f"{width}x{height} image (VOC boxes are 1-based, inclusive).")
  hard = (obj.findtext("difficult") or "0").strip() == "1"
  box = ((ymin - 1) / height, (xmin - 1) / width, ymax / height, xmax / width)
  return box, CLASS_NAMES.index(name), hard


def to_dataset(split: VocSplit) -> tf.data.Dataset:
  """VocSplit -> elements in the TFDS "voc" layout, image decoded:
  {"image" [H, W, 3] float32 in [0, 1], "objects": {"bbox" [M, 4], "label" [M] int64,
  "is_difficult" [M] bool}, "id" string}; the input of `detection_dataset`'s map."""
  ex = split.examples
  offsets = np.cumsum([0] + [len(e.labels) for e in ex])
  boxes = tf.RaggedTensor.from_row_splits(
      np.concatenate([e.boxes for e in ex]).reshape(-1, 4), offsets)
  labels = tf.RaggedTensor.from_row_splits(np.concatenate([e.labels for e in ex]), offsets)
  difficult = tf.RaggedTensor.from_row_splits(np.concatenate([e.difficult for e in ex]), offsets)
  ds = tf.data.Dataset.from_tensor_slices({
      "path": [e.image_path for e in ex], "id": [e.id for e in ex],
      "bbox": boxes, "label": labels, "is_difficult": difficult})

  def load(element):
    image = tf.io.decode_jpeg(tf.io.read_file(element["path"]), channels=3)
    return {"image": tf.image.convert_image_dtype(image, tf.float32),
            "objects": {"bbox": element["bbox"], "label": element["label"],
                        "is_difficult": element["is_difficult"]},
            "id": element["id"]}

  return ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
