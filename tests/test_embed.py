"""cpc_tf/embed.py: in-memory and folder embeddings, files, reruns, interruptions, refusals."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

import cpc_tf
from cpc_tf import embed as embed_lib, export
from cpc_tf.configs import DataConfig
from cpc_tf.eval import encoders
from cpc_tf.model import build_model
from test_export import fake_run
from test_held_out import make_folder
from tolerances import assert_close_f32, network_terms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """A tiny pre-training model_dir (config, averaged weights) and its export."""
  base = tmp_path_factory.mktemp("embed")
  model_dir, export_dir = str(base / "run"), str(base / "export")
  config, _, averaged = fake_run(model_dir)
  encoder = encoders.load_encoder(model_dir)
  export.export_encoder(encoder.model, config.model.grid, export_dir)
  return model_dir, export_dir, config, averaged


def folder_data(path):
  return DataConfig(source="folder", path=path, test_fraction=0.0)


def test_embed_in_memory_is_the_probe_feature_for_uint8_and_float(run):
  model_dir, _, config, averaged = run
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (5, 40, 36, 3)).astype(np.uint8)
  got = cpc_tf.embed(images, model_dir)  # the package attribute is the call
  assert got.shape == (5, averaged.encoder.output["pooled"].shape[-1])
  assert got.dtype == np.float32
  # What pre-training computes without augmentation: resize, centre crop, grid,
  # pooled vector per patch, mean over the grid (tiny: 32 -> 32, 4x4 of 8 px).
  grid = config.model.grid
  crops = tf.image.resize(images.astype(np.float32) / 255, [grid.resize_to] * 2,
                          antialias=True)
  want = tf.reduce_mean(averaged.latents(tf.clip_by_value(crops, 0.0, 1.0)), axis=[1, 2])
  assert_close_f32(got, want, *network_terms(averaged.encoder))
  np.testing.assert_allclose(embed_lib.embed(images / 255.0, model_dir), got, atol=1e-6)
  grey = embed_lib.embed(images[..., :1], model_dir)
  np.testing.assert_allclose(grey, embed_lib.embed(np.repeat(images[..., :1], 3, -1),
                                                   model_dir), atol=1e-6)
  assert embed_lib.embed(images[:0], model_dir).shape == (0, got.shape[1])


def test_an_export_embeds_like_its_model_dir(run):
  model_dir, export_dir, _, averaged = run
  images = np.random.default_rng(1).integers(0, 256, (3, 50, 50, 3)).astype(np.uint8)
  assert_close_f32(embed_lib.embed(images, export_dir), embed_lib.embed(images, model_dir),
                   *network_terms(averaged.encoder))
  assert embed_lib.load(model_dir) is embed_lib.load(model_dir + "/")  # loaded once


def test_an_encoder_object_with_a_grid(run):
  _, _, config, _ = run
  encoder = build_model(config.model).encoder  # a random initialisation
  images = np.zeros((2, 32, 32, 3), np.uint8)
  assert embed_lib.embed(images, encoder, grid=config.model.grid).shape[0] == 2
  with pytest.raises(embed_lib.EmbedError, match="needs grid="):
    embed_lib.embed(images, encoder)


@pytest.mark.parametrize("images, message", [
    (np.zeros((32, 32, 3), np.uint8), r"\[B, H, W, C\].*images\[None\]"),
    (np.zeros((1, 32, 32, 5), np.uint8), "C in 1..4"),
    (np.zeros((1, 32, 32, 3), np.int64), "dtype int64: pass uint8"),
    (np.full((1, 32, 32, 3), 255.0), r"in \[0, 1\].*Divide 0..255 values by 255"),
    (np.full((1, 32, 32, 3), np.nan), r"in \[0, 1\]"),
])
def test_bad_images_are_refused_in_one_line(run, images, message):
  with pytest.raises(embed_lib.EmbedError, match=message) as e:
    embed_lib.embed(images, run[0])
  assert "\n" not in str(e.value)


def test_bad_sources_are_refused_in_one_line(run, tmp_path):
  with pytest.raises(embed_lib.EmbedError, match="not a pre-training model_dir"):
    embed_lib.embed(np.zeros((1, 8, 8, 3), np.uint8), str(tmp_path))
  with pytest.raises(embed_lib.EmbedError, match="does not exist"):
    embed_lib.embed(np.zeros((1, 8, 8, 3), np.uint8), str(tmp_path / "nothing"))
  with pytest.raises(embed_lib.EmbedError, match="cannot be chosen"):
    embed_lib.embed(np.zeros((1, 8, 8, 3), np.uint8), run[1], step=7)


def read_csv(path):
  with open(path, newline="") as f:
    return list(csv.reader(f))


def test_a_folder_embeds_in_order_with_names_labels_and_both_files(run, tmp_path, capsys):
  model_dir = run[0]
  folder = make_folder(tmp_path / "images", per_class=3, classes=("ant", "bee"))
  out = str(tmp_path / "out")
  result = embed_lib.embed_data(folder_data(folder), model_dir, out, batch_size=4,
                                verbose=True)
  names = [f"{c}/x{c}{i:02d}.png" for c in ("ant", "bee") for i in range(3)]
  assert result.names == tuple(names)
  assert result.labels.tolist() == [0, 0, 0, 1, 1, 1]
  assert result.class_names == ("ant", "bee")
  assert "embedded 6/6 images" in capsys.readouterr().out
  # The same images from memory give the same vectors: one definition of an embedding.
  pixels = np.stack([np.asarray(Image.open(os.path.join(folder, n))) for n in names])
  np.testing.assert_allclose(result.embeddings, embed_lib.embed(pixels, model_dir),
                             atol=1e-6)
  back = embed_lib.read(out)
  np.testing.assert_array_equal(back.embeddings, result.embeddings)
  assert (back.names, back.class_names, back.encoder) == (result.names, ("ant", "bee"),
                                                           model_dir)
  rows = read_csv(os.path.join(out, embed_lib.CSV))
  d = result.embeddings.shape[1]
  assert rows[0] == ["name", "label", "class", *(f"d{i}" for i in range(d))]
  assert [r[:3] for r in rows[1:]] == [[n, str(l), ("ant", "bee")[l]]
                                        for n, l in zip(names, result.labels)]
  np.testing.assert_array_equal(np.array([r[3:] for r in rows[1:]], np.float32),
                                result.embeddings)  # %.9g reads back exactly


def test_a_flat_folder_has_no_labels(run, tmp_path):
  folder = tmp_path / "flat"
  folder.mkdir()
  for i in range(3):
    Image.fromarray(np.full((10, 10, 3), 40 * i, np.uint8)).save(folder / f"{i}.png")
  result = embed_lib.embed_data(folder_data(str(folder)), run[0], str(tmp_path / "out"))
  assert result.names == ("0.png", "1.png", "2.png")
  assert result.labels.tolist() == [-1, -1, -1] and result.class_names == ()
  assert read_csv(tmp_path / "out" / embed_lib.CSV)[1][:3] == ["0.png", "-1", ""]


def test_a_rerun_writes_the_same_bytes(run, tmp_path):
  folder = make_folder(tmp_path / "images", per_class=2)
  out = str(tmp_path / "out")
  embed_lib.embed_data(folder_data(folder), run[0], out)
  first = {n: open(os.path.join(out, n), "rb").read() for n in (embed_lib.NPZ, embed_lib.CSV)}
  embed_lib.load.cache_clear()  # as a new process would: load the weights again
  embed_lib.embed_data(folder_data(folder), run[0], out)
  for name, data in first.items():
    assert open(os.path.join(out, name), "rb").read() == data, name
  assert sorted(os.listdir(out)) == sorted(first)  # no temporary files left


def test_an_interrupted_run_leaves_no_output(run, tmp_path):
  folder = make_folder(tmp_path / "images", per_class=4)
  model_dir = run[0]
  real = embed_lib.load(model_dir)
  calls = []

  def failing(crops):
    calls.append(1)
    if len(calls) == 2:
      raise KeyboardInterrupt  # Ctrl-C in the middle of the folder
    return real.pooled(crops)

  broken = embed_lib.Embedder(failing, real.grid, real.source)
  out = tmp_path / "out"
  with pytest.raises(KeyboardInterrupt):
    embed_lib.embed_data(folder_data(folder), broken, str(out), batch_size=3)
  assert len(calls) == 2
  assert not out.exists() or not os.listdir(out)


def test_files_it_did_not_write_are_refused_unless_overwrite(run, tmp_path):
  folder = make_folder(tmp_path / "images", per_class=2)
  out = tmp_path / "out"
  out.mkdir()
  (out / embed_lib.CSV).write_text("my,own,table\n")
  with pytest.raises(embed_lib.EmbedError, match="not written by cpc_tf.embed: pass "
                     "--overwrite") as e:
    embed_lib.embed_data(folder_data(folder), run[0], str(out))
  assert "\n" not in str(e.value)
  assert (out / embed_lib.CSV).read_text() == "my,own,table\n"
  (out / embed_lib.CSV).unlink()
  np.savez(out / embed_lib.NPZ, embeddings=np.zeros((2, 2)))  # someone else's npz
  with pytest.raises(embed_lib.EmbedError, match="embeddings.npz exists"):
    embed_lib.embed_data(folder_data(folder), run[0], str(out))
  embed_lib.embed_data(folder_data(folder), run[0], str(out), overwrite=True)
  assert embed_lib.read(str(out)).embeddings.shape[0] == 6


def test_import_cpc_tf_does_not_import_tensorflow():
  script = ("import sys, cpc_tf; assert 'tensorflow' not in sys.modules; "
            "from cpc_tf import embed; assert callable(embed) and callable(embed.embed_data); "
            "assert cpc_tf.embed is embed; print('ok')")
  proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_a_fashion_mnist_split_with_an_encoder_object_in_storage_order(run):
  """What a study's map needs: a labelled split through a random initialisation."""
  from cpc_tf.data import fashion_mnist  # pylint: disable=import-outside-toplevel
  config = run[2]
  encoder = build_model(config.model).encoder
  data = DataConfig(source="fashion_mnist", split="test", max_examples=7)
  result = embed_lib.embed_dataset(data, encoder, grid=config.model.grid, batch_size=3)
  pixels, labels = fashion_mnist.load("test")
  assert result.names == tuple(str(i) for i in range(7))
  assert result.labels.tolist() == labels[:7].tolist()
  assert result.class_names == tuple(fashion_mnist.CLASS_NAMES)
  np.testing.assert_allclose(
      result.embeddings, embed_lib.embed(pixels[:7], encoder,
                                         grid=config.model.grid), atol=1e-6)


def test_an_output_dir_under_a_file_is_refused_before_any_work(run, tmp_path):
  (tmp_path / "file").write_text("x")
  with pytest.raises(ValueError, match="regular file") as e:
    embed_lib.embed_data(folder_data(str(tmp_path / "missing")), run[0],
                         str(tmp_path / "file" / "out"))
  assert "\n" not in str(e.value)


def test_a_tfds_split_is_named_by_tfds_id_with_its_labels(run):
  """TFDS mocked (random images, the real loading code), as in test_data_pipelines."""
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  from cpc_tf.data import sources  # pylint: disable=import-outside-toplevel
  data = DataConfig(source="cifar10", split="test")
  with tfds.testing.mock_data(num_examples=5):
    result = embed_lib.embed_dataset(data, run[0], batch_size=2)
    source = sources.load(data, labelled=True)
    stored = list(source.dataset.as_numpy_iterator())
  assert result.embeddings.shape[0] == 5
  assert result.names == tuple(e["id"].decode() for e in stored)
  assert result.labels.tolist() == [int(e["label"]) for e in stored]
  assert result.class_names == source.class_names and len(result.class_names) == 10
