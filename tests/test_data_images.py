"""cpc_tf.data.images: every stored format decodes to [H, W, 3] float32 in [0, 1]."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cpc_tf.data import images

RNG = np.random.default_rng(0)
RGB = (RNG.random((20, 12, 3)) * 255).astype(np.uint8)


def _encode(image: Image.Image, fmt: str) -> bytes:
  buffer = io.BytesIO()
  image.save(buffer, fmt)
  return buffer.getvalue()


def _decode(data: bytes) -> np.ndarray:
  out = images.decode(tf.constant(data))
  assert out.dtype == tf.float32 and out.shape[-1] == 3
  return out.numpy()


@pytest.mark.parametrize("fmt", ["PNG", "BMP"])
def test_lossless_rgb_matches_pil(fmt):
  np.testing.assert_allclose(_decode(_encode(Image.fromarray(RGB), fmt)), RGB / 255, atol=1e-6)


def test_grey_and_grey_alpha_tile_to_three_channels():
  grey = Image.fromarray(RGB[..., 0])
  for image in (grey, grey.convert("LA")):
    out = _decode(_encode(image, "PNG"))
    np.testing.assert_allclose(out, np.repeat(RGB[..., :1], 3, -1) / 255, atol=1e-6)


def test_rgba_drops_alpha():
  rgba = np.concatenate([RGB, np.zeros_like(RGB[..., :1])], -1)  # fully transparent
  out = _decode(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
  np.testing.assert_allclose(out, RGB / 255, atol=1e-6)


def test_sixteen_bit_png_scales_by_65535():
  levels = np.arange(240, dtype=np.uint16).reshape(20, 12) * 250  # up to 59750
  out = _decode(_encode(Image.fromarray(levels), "PNG"))
  np.testing.assert_allclose(out[..., 0], levels / 65535, atol=1e-6)
  assert out.max() < 0.95  # not saturated as an 8-bit read would be


def test_cmyk_jpeg_decodes_like_pil():
  big = Image.fromarray(RGB).resize((48, 80))
  data = _encode(big.convert("CMYK"), "JPEG")
  expected = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")) / 255
  assert np.abs(_decode(data) - expected).mean() < 0.02


def test_gif_keeps_first_frame():
  frames = [Image.fromarray(RGB), Image.fromarray(255 - RGB)]
  buffer = io.BytesIO()
  frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
  out = _decode(buffer.getvalue())
  assert out.shape == (20, 12, 3)
  expected = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")) / 255
  np.testing.assert_allclose(out, expected, atol=1e-6)


def test_to_rgb_on_uint8_arrays_and_inside_tf_data():
  grey = tf.constant(RGB[..., :1])
  eager = images.to_rgb(grey).numpy()
  graph = next(iter(tf.data.Dataset.from_tensors(grey).map(images.to_rgb))).numpy()
  np.testing.assert_array_equal(eager, graph)
  np.testing.assert_allclose(eager, np.repeat(RGB[..., :1], 3, -1) / 255, atol=1e-6)


# Palette and 1-bit images: TF's reading against PIL's (issue 9). TF's BMP
# decoder returns 8-bit palette indices as grey and rejects 1-bit files, so
# image files go through `decode_file`, which hands BMPs to PIL.
PALETTE = Image.fromarray(RGB).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)


@pytest.mark.parametrize("mode, fmt", [("P", "BMP"), ("1", "BMP"), ("P", "PNG"), ("1", "PNG"),
                                       ("P", "GIF"), ("RGB", "BMP"), ("RGB", "PNG")])
def test_palette_and_one_bit_files_decode_to_pil_rgb(mode, fmt):
  image = PALETTE if mode == "P" else Image.fromarray(RGB).convert(mode)
  data = _encode(image, fmt)
  expected = np.asarray(image.convert("RGB")) / 255
  assert len(np.unique(expected.reshape(-1, 3), axis=0)) > 1  # colours, not one grey
  out = images.to_rgb(images.decode_file(data)).numpy()
  assert out.dtype == np.float32 and out.shape == (20, 12, 3)
  np.testing.assert_allclose(out, expected, atol=1e-6)


@pytest.mark.parametrize("mode, fmt", [("P", "PNG"), ("1", "PNG"), ("P", "GIF")])
def test_tf_graph_decode_agrees_with_pil_on_palette_png_and_gif(mode, fmt):
  """TFDS bytes use the graph `decode` (no PIL): it must agree where it is used."""
  image = PALETTE if mode == "P" else Image.fromarray(RGB).convert(mode)
  data = _encode(image, fmt)
  np.testing.assert_allclose(_decode(data), np.asarray(image.convert("RGB")) / 255, atol=1e-6)
  np.testing.assert_allclose(_decode(data), images.to_rgb(images.decode_file(data)).numpy(),
                             atol=1e-6)
