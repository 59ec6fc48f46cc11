"""cpc_tf.data.sources: TFDS by name (mocked and a real tiny builder) and its errors."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from cpc_tf.configs import DataConfig
from cpc_tf.data import DataError, fashion_mnist, sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class CpcTinyImages(tfds.core.GeneratorBasedBuilder):
  """A real on-disk TFDS dataset whose image / label keys are not the usual ones."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
        "picture": tfds.features.Image(shape=(None, None, 3)),
        "kind": tfds.features.ClassLabel(names=["cat", "dog"]),
    }))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(6), "test": self._generate_examples(3)}

  def _generate_examples(self, n):
    rng = np.random.default_rng(n)
    for i in range(n):
      yield i, {"picture": rng.integers(0, 255, (10 + i, 12, 3), dtype=np.uint8),
                "kind": i % 2}


class CpcNoImages(tfds.core.GeneratorBasedBuilder):
  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {"value": tfds.features.Tensor(shape=(), dtype=np.float32)}))

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples()}

  def _generate_examples(self):
    yield 0, {"value": 1.0}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  tfds.builder("cpc_tiny_images", data_dir=data_dir).download_and_prepare()
  return data_dir


def test_real_builder_finds_image_and_label_keys(tiny_dir):
  source = sources.load(DataConfig(source="cpc_tiny_images", data_dir=tiny_dir))
  assert source.num_examples == 6 and source.class_names == ("cat", "dog")
  element = next(iter(source.dataset))
  assert element["image"].dtype == tf.string  # still encoded: decoded after shuffling
  assert source.decode(element["image"]).shape[-1] == 3
  assert element["id"].numpy().decode().startswith("cpc_tiny_images-train")


def test_real_builder_slices_and_max_examples(tiny_dir):
  data = DataConfig(source="cpc_tiny_images", data_dir=tiny_dir, split="train[:4]+test")
  assert sources.load(data).num_examples == 7
  data = DataConfig(source="cpc_tiny_images", data_dir=tiny_dir, max_examples=2)
  assert sources.load(data).num_examples == 2
  assert len(list(sources.load(data).dataset)) == 2


def test_unknown_split_names_the_available_ones(tiny_dir):
  with pytest.raises(DataError, match="no split 'validation'; available splits: test, train"):
    sources.load(DataConfig(source="cpc_tiny_images", data_dir=tiny_dir, split="validation"))
  with pytest.raises(DataError, match="no split 'unlabelled'"):
    sources.load(DataConfig(source="cpc_tiny_images", data_dir=tiny_dir,
                            split="train[:2]+unlabelled"))


def test_unknown_dataset_and_config_suggest_fixes():
  with pytest.raises(DataError, match="(?s)does not know the dataset 'imagenet2021'.*imagenet2012"):
    sources.load(DataConfig(source="imagenet2021"))
  with pytest.raises(DataError, match="Close names: stl10"):
    sources.load(DataConfig(source="stl-10"))  # not even a valid TFDS name
  with pytest.raises(DataError, match=r"voc \(configs: 2007, 2012\)"):
    sources.load(DataConfig(source="voc2007"))
  with pytest.raises(DataError,
                     match="(?s)no config 'imagenet2012_subset/2pct'.*Available configs: 1pct"):
    sources.load(DataConfig(source="imagenet2012_subset/2pct"))


def test_no_image_feature_and_unprepared_data_raise(tmp_path):
  with pytest.raises(DataError, match="has no image feature.*value"):
    sources.load(DataConfig(source="cpc_no_images", data_dir=str(tmp_path)))
  with pytest.raises(DataError,
                     match="(?s)not prepared.*downloads/manual.*tfds build imagenet2012"):
    sources.load(DataConfig(source="imagenet2012", data_dir=str(tmp_path)))


def test_fashion_mnist_falls_back_to_tfds_without_the_debian_files(tmp_path, monkeypatch):
  monkeypatch.setattr(fashion_mnist, "DEFAULT_DIR", str(tmp_path))
  fashion_mnist.load.cache_clear()
  try:
    with tfds.testing.mock_data(num_examples=3):
      source = sources.load(DataConfig(source="fashion_mnist", split="test"))
  finally:
    fashion_mnist.load.cache_clear()
  assert source.num_examples == 3 and source.ids == ("0", "1", "2")
  assert source.decode(next(iter(source.dataset))["image"]).shape == (28, 28, 3)


@pytest.mark.parametrize("name, split, classes", [
    ("imagenet2012", "train", 1000), ("imagenet2012_subset/10pct", "train", 1000),
    ("stl10", "unlabelled", 10), ("cifar10", "test", 10)])
def test_mocked_paper_datasets(name, split, classes):
  with tfds.testing.mock_data(num_examples=5):
    source = sources.load(DataConfig(source=name, split=split), labelled=True)
    assert source.num_examples == 5 and source.num_classes == classes
    image = source.decode(next(iter(source.dataset))["image"])
    assert image.dtype == tf.float32 and image.shape[-1] == 3


def test_detection_needs_objects():
  with tfds.testing.mock_data(num_examples=2):
    with pytest.raises(DataError, match="no 'objects' feature.*voc/2007"):
      sources.load(DataConfig(source="cifar10"), with_objects=True)


def test_dataset_mistakes_suggest_the_papers_name_first():
  """Issue 9: --dataset=imagenet suggested imagenette and four others, not imagenet2012."""
  for wrong in ("imagenet", "ImageNet-1k", "imagenet2021"):
    with pytest.raises(DataError, match=r"Close names: imagenet2012[;.]"):
      sources.load(DataConfig(source=wrong))


OFFLINE = """
  import time
  from cpc_tf.configs import DataConfig
  from cpc_tf.data import DataError, sources
  start = time.time()
  try:
    sources.load(DataConfig(source="cifar100", data_dir={data_dir!r}))
  except DataError as e:
    print(f"after {{time.time() - start:.1f}} s: {{e}}")
"""


def test_unprepared_dataset_without_network_fails_before_downloading(tmp_path):
  """Issue 9: offline, an unprepared TFDS name retried for 3.5 min before its message.

  The network is cut for the subprocess by a proxy on a closed local port, so
  the check is the same on a machine that is online.
  """
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT,
             HTTPS_PROXY="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9",
             HTTP_PROXY="http://127.0.0.1:9", http_proxy="http://127.0.0.1:9", NO_PROXY="")
  script = textwrap.dedent(OFFLINE.format(data_dir=str(tmp_path)))
  try:
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
  except subprocess.TimeoutExpired:
    pytest.fail("no error within 120 s: the download was retried")
  assert "no network is reachable" in proc.stdout, proc.stdout + proc.stderr[-3000:]
  assert "127.0.0.1:9" in proc.stdout and "tfds build cifar100" in proc.stdout
  assert float(proc.stdout.split("after ")[1].split(" s")[0]) < 15
  assert "Downloading and preparing" not in proc.stderr
