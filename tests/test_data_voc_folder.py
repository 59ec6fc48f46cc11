"""VOCdevkit folder reader: coordinates, difficult flags, bad XML and boxes (fail / skip+count)."""

import os

import numpy as np
import pytest
from PIL import Image

from cpc_tf.data import voc_folder
from cpc_tf.data.errors import DataError

_OBJECT = ("<object><name>{name}</name><difficult>{hard}</difficult><bndbox><xmin>{x0}</xmin>"
           "<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")


def _write(root, annotations, split="trainval"):
  base = os.path.join(root, "VOC2007")
  for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
    os.makedirs(os.path.join(base, sub), exist_ok=True)
  for image_id, xml in annotations.items():
    Image.new("RGB", (40, 20), (200, 10, 10)).save(os.path.join(base, "JPEGImages", f"{image_id}.jpg"))
    with open(os.path.join(base, "Annotations", f"{image_id}.xml"), "w") as f:
      f.write(xml)
  with open(os.path.join(base, "ImageSets", "Main", f"{split}.txt"), "w") as f:
    f.write("\n".join(annotations) + "\n")
  return root


def _xml(*objects, width=40, height=20):
  body = "".join(_OBJECT.format(**o) for o in objects)
  return (f"<annotation><size><width>{width}</width><height>{height}</height><depth>3</depth>"
          f"</size>{body}</annotation>")


GOOD = dict(name="dog", hard=0, x0=1, y0=1, x1=20, y1=10)
HARD = dict(name="person", hard=1, x0=11, y0=6, x1=40, y1=20)
OUTSIDE = dict(name="cat", hard=0, x0=5, y0=5, x1=41, y1=10)


def test_reads_boxes_labels_difficult(tmp_path):
  root = _write(str(tmp_path), {"000001": _xml(GOOD, HARD)})
  split = voc_folder.read_split(root, "trainval")
  (ex,) = split.examples
  assert (ex.height, ex.width) == (20, 40) and split.skipped == {}
  np.testing.assert_allclose(ex.boxes, [[0, 0, 10 / 20, 20 / 40], [5 / 20, 10 / 40, 1, 1]])
  assert list(ex.labels) == [voc_folder.CLASS_NAMES.index("dog"),
                             voc_folder.CLASS_NAMES.index("person")]
  assert list(ex.difficult) == [False, True]
  # The VOC2007 folder itself works as root too.
  assert len(voc_folder.read_split(os.path.join(root, "VOC2007")).examples) == 1


def test_bad_files_fail_or_are_skipped_and_counted(tmp_path):
  root = _write(str(tmp_path), {"a": _xml(GOOD), "b": "<annotation><size>", "c": _xml(GOOD, OUTSIDE),
                                "d": _xml(dict(GOOD, name="unicorn"), GOOD)})
  with pytest.raises(DataError, match="b.xml cannot be read.*on_bad='skip'"):
    voc_folder.read_split(root)
  split = voc_folder.read_split(root, on_bad="skip")
  assert [e.id for e in split.examples] == ["a", "c", "d"]
  assert split.skipped == {"malformed annotation": 1, "box outside image": 1, "unknown class": 1}
  assert split.num_boxes == 3


def test_box_outside_image_fails_with_its_file(tmp_path):
  root = _write(str(tmp_path), {"c": _xml(OUTSIDE)})
  with pytest.raises(DataError, match="c.xml, object 0: box .* outside the 40x20 image"):
    voc_folder.read_split(root)


def test_dataset_without_boxes_is_refused(tmp_path):
  root = _write(str(tmp_path), {"a": _xml(), "b": _xml()})
  with pytest.raises(DataError, match="has a box"):
    voc_folder.read_split(root)


def test_missing_folder_and_split(tmp_path):
  with pytest.raises(DataError, match="not a VOCdevkit folder"):
    voc_folder.read_split(str(tmp_path))
  root = _write(str(tmp_path), {"a": _xml(GOOD)})
  with pytest.raises(DataError, match="No split file"):
    voc_folder.read_split(root, "test")


def test_to_dataset_tfds_layout(tmp_path):
  root = _write(str(tmp_path), {"a": _xml(GOOD, HARD), "b": _xml(GOOD)})
  elements = list(voc_folder.to_dataset(voc_folder.read_split(root)))
  assert len(elements) == 2
  first = elements[0]
  assert first["image"].shape == (20, 40, 3) and float(first["image"][0, 0, 0]) > 0.7
  np.testing.assert_allclose(first["objects"]["bbox"].numpy()[1], [0.25, 0.25, 1, 1])
  assert list(first["objects"]["is_difficult"].numpy()) == [False, True]
  assert elements[1]["objects"]["label"].shape == (1,) and elements[1]["id"] == b"b"
