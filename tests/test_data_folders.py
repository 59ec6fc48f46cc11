"""cpc_tf.data.folders: listing, validation and the bad-file report of image folders."""

import logging
import os

import numpy as np
import pytest
from PIL import Image

from cpc_tf.data import DataError, folders

RNG = np.random.default_rng(0)


def _image(mode="RGB", size=(24, 18)):
  rgb = Image.fromarray((RNG.random((size[1], size[0], 3)) * 255).astype(np.uint8))
  if mode == "I;16":
    return Image.fromarray((RNG.random((size[1], size[0])) * 65535).astype(np.uint16))
  return rgb.convert(mode)


def make_folder(root):
  """A class-per-folder tree with every format, 2 bad files and 1 empty class."""
  files = {
      "a/rgb.jpg": (_image(), "JPEG"), "a/grey.png": (_image("L"), "PNG"),
      "a/rgba.png": (_image("RGBA"), "PNG"), "a/deep/nested/p16.png": (_image("I;16"), "PNG"),
      "a/pic.bmp": (_image(), "BMP"), "b/anim.GIF": (_image("P"), "GIF"),
      "b/cmyk.jpg": (_image("CMYK"), "JPEG"), "b/big.jpeg": (_image(size=(64, 48)), "JPEG"),
  }
  for rel, (image, fmt) in files.items():
    os.makedirs(os.path.dirname(os.path.join(root, rel)), exist_ok=True)
    image.save(os.path.join(root, rel), fmt)
  with open(os.path.join(root, "b/big.jpeg"), "rb") as f:
    data = f.read()
  with open(os.path.join(root, "b/truncated.jpg"), "wb") as f:
    f.write(data[:len(data) // 2])
  with open(os.path.join(root, "b/notes.jpg"), "w") as f:
    f.write("not an image")
  with open(os.path.join(root, "b/readme.txt"), "w") as f:
    f.write("ignored: not an image extension")
  os.makedirs(os.path.join(root, "empty_class"))
  return str(root)


def test_unlabelled_scan_finds_nested_images_and_names_bad_files(tmp_path):
  scan = folders.scan(make_folder(tmp_path), labelled=False)
  assert len(scan.files) == 8 and set(scan.labels) == {-1}
  assert "a/deep/nested/p16.png" in scan.files
  assert dict(scan.bad).keys() == {"b/truncated.jpg", "b/notes.jpg"}
  assert scan.class_names is None


def test_labelled_scan_maps_sorted_sub_folders_to_classes(tmp_path, caplog):
  with caplog.at_level(logging.WARNING):
    scan = folders.scan(make_folder(tmp_path), labelled=True)
  assert scan.class_names == ("a", "b", "empty_class")
  labels = dict(zip(scan.files, scan.labels))
  assert labels["a/deep/nested/p16.png"] == 0 and labels["b/cmyk.jpg"] == 1
  assert "empty_class" in caplog.text


def test_skip_reports_each_bad_file_and_the_count(tmp_path, caplog):
  scan = folders.scan(make_folder(tmp_path), labelled=False)
  with caplog.at_level(logging.WARNING):
    folders.report(scan, "skip", min_size=32)
  assert "Skipped 2 of 10 file(s)" in caplog.text
  assert "truncated.jpg" in caplog.text and "notes.jpg" in caplog.text
  assert "7 of 8 image(s)" in caplog.text and "upscaled" in caplog.text


def test_fail_raises_naming_the_files_and_the_fix(tmp_path):
  scan = folders.scan(make_folder(tmp_path), labelled=False)
  with pytest.raises(DataError, match=r"(?s)2 unusable.*truncated\.jpg.*on_bad_file='skip'"):
    folders.report(scan, "fail")
  with pytest.raises(DataError, match="on_bad_file='ignore'"):
    folders.report(scan, "ignore")


def test_empty_and_missing_folders_raise(tmp_path):
  (tmp_path / "empty" / "sub").mkdir(parents=True)
  (tmp_path / "empty" / "sub" / "notes.txt").write_text("x")
  with pytest.raises(DataError, match="holds no images"):
    folders.scan(str(tmp_path / "empty"), labelled=False)
  with pytest.raises(DataError, match="no class sub-folders"):
    folders.scan(str(tmp_path / "empty" / "sub"), labelled=True)
  with pytest.raises(DataError, match="does not exist"):
    folders.scan(str(tmp_path / "missing"), labelled=False)


def test_all_files_bad_raises_even_when_skipping(tmp_path):
  (tmp_path / "x.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
  scan = folders.scan(str(tmp_path), labelled=False)
  with pytest.raises(DataError, match="Every image file"):
    folders.report(scan, "skip")


def test_check_file_accepts_trailing_padding_and_rejects_unsupported_formats(tmp_path):
  path = str(tmp_path / "padded.jpg")
  _image().save(path, "JPEG")
  with open(path, "ab") as f:
    f.write(b"\x00" * 10)
  assert folders.check_file(path)[0] is None
  tiff = str(tmp_path / "tiff.png")  # a TIFF behind a .png name
  _image().save(tiff, "TIFF")
  reason, _ = folders.check_file(tiff)
  assert "TIFF" in reason and "re-save" in reason
