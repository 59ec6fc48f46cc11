"""cpc_tf.eval.detection: backbones (CPC, supervised baseline, random), data sources,
bad input, the paper-size detector."""

import dataclasses
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cpc_tf import configs
from cpc_tf.data import voc_folder
from cpc_tf.data.errors import DataError
from cpc_tf.detection import detector as detector_lib
from cpc_tf.eval import detection
from test_encoders import pretrained_model_dir, supervised_output_dir

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_OBJECT = ("<object><name>{name}</name><difficult>{hard}</difficult><bndbox><xmin>{x0}"
           "</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>")


def voc_devkit(root, split="trainval", count=3):
  """A VOCdevkit folder with `count` 48x32 images, a dog and a difficult person each."""
  base = os.path.join(root, "VOC2007")
  for sub in ("Annotations", "ImageSets/Main", "JPEGImages"):
    os.makedirs(os.path.join(base, sub), exist_ok=True)
  ids = [f"{i:06d}" for i in range(count)]
  for image_id in ids:
    Image.new("RGB", (48, 32), (200, 10, 10)).save(
        os.path.join(base, "JPEGImages", f"{image_id}.jpg"))
    objects = (_OBJECT.format(name="dog", hard=0, x0=1, y0=1, x1=24, y1=16) +
               _OBJECT.format(name="person", hard=1, x0=25, y0=9, x1=48, y1=32))
    with open(os.path.join(base, "Annotations", f"{image_id}.xml"), "w") as f:
      f.write(f"<annotation><size><width>48</width><height>32</height></size>{objects}"
              "</annotation>")
  with open(os.path.join(base, "ImageSets", "Main", f"{split}.txt"), "w") as f:
    f.write("\n".join(ids) + "\n")
  return root


def tiny(**changes):
  return configs.replace(configs.detection_tiny(), **changes)


def test_a_voc_folder_feeds_padded_augmented_batches(tmp_path):
  root = voc_devkit(str(tmp_path))
  config = tiny(**{"data.source": "folder", "data.path": root, "data.split": "trainval",
                   "color_drop_p": 0.8, "scale_range": (0.8, 1.25)})
  assert detection.class_names(config) == voc_folder.CLASS_NAMES
  assert detection.num_train_images(config) == 3
  batch = next(iter(detection.train_dataset(config, None, seed=0)))
  assert "id" not in batch  # strings never reach the step
  assert batch["image"].shape == (2, 64, 64, 3)
  labels = batch["labels"].numpy()
  # A zoom of at most 1.25 keeps part of the top-left dog in every image; pads are -1.
  dog, person = (voc_folder.CLASS_NAMES.index(n) for n in ("dog", "person"))
  assert (labels == dog).any(axis=1).all()
  assert set(labels.ravel()) <= {dog, person, -1}
  valid = labels >= 0
  boxes = batch["boxes"].numpy()[valid]
  assert (boxes >= 0).all() and (boxes <= 1).all()
  test = next(iter(detection.eval_dataset(config, "trainval", 0)))
  # Unaugmented: the 48x32 image fills the top 64x43 of the padded 64 px square.
  np.testing.assert_allclose(test["boxes"][0, 0].numpy(),
                             [0, 0, 16 / 32 * 43 / 64, 0.5], atol=0.01)
  assert test["difficult"][0].numpy().tolist() == [False, True]


def test_a_dataset_without_boxes_is_refused(tmp_path):
  with pytest.raises(DataError, match="fashion_mnist has no boxes"):
    detection.class_names(tiny(**{"data.source": "fashion_mnist"}))
  config = tiny(**{"data.source": "folder", "data.path": str(tmp_path)})
  with pytest.raises(DataError, match="not a VOCdevkit folder"):
    next(iter(detection.train_dataset(config, None, 0)))


def test_synthetic_set_refuses_augmentations_it_does_not_apply():
  with pytest.raises(ValueError, match="flips only"):
    detection.check_config(tiny(color_drop_p=0.5))


def test_backbone_choice_errors(tmp_path):
  with pytest.raises(ValueError, match="needs --model_dir"):
    detection.load_backbone(None, tiny(backbone="pretrained"))
  with pytest.raises(ValueError, match="--model_dir=.* was given but backbone='random'"):
    detection.load_backbone(str(tmp_path), tiny())
  with pytest.raises(ValueError, match="--checkpoint_step=3 was given"):
    detection.load_backbone(None, tiny(), step=3)


def test_model_dir_without_checkpoint_is_refused(tmp_path_factory, tmp_path):
  source = pretrained_model_dir(tmp_path_factory)
  empty = tmp_path / "no_ckpt"
  empty.mkdir()
  with open(os.path.join(source, "config.json")) as f:
    (empty / "config.json").write_text(f.read())
  with pytest.raises(FileNotFoundError, match="has no"):
    detection.load_backbone(str(empty), tiny(backbone="pretrained"))


def test_an_encoder_not_at_stride_16_is_refused(tmp_path_factory):
  # The tiny pre-training encoder keeps full resolution in its stem: stride 4.
  backbone = detection.load_backbone(pretrained_model_dir(tmp_path_factory),
                                     tiny(backbone="pretrained"))
  with pytest.raises(ValueError, match="its stride is not 16"):
    detector_lib.FasterRCNN(backbone.model, 3, configs.detection_tiny().detector,
                            feature=backbone.feature)


def test_evaluate_map_scores_detections():
  config = tiny()
  backbone = detection.load_backbone(None, config)
  model = detector_lib.FasterRCNN(backbone.model, 3, config.detector, feature=backbone.feature)
  out = detection.evaluate_map(model, tf.distribute.get_strategy(),
                               detection.eval_dataset(config, "test", 4), 3)
  assert out["count"] == 4 and out["ap"].shape == (3,)
  assert np.isnan(out["map"]) or 0.0 <= out["map"] <= 1.0


@pytest.mark.slow
def test_paper_size_detector_runs_one_step():
  """ResNet-161 backbone, the paper detector (residual head), one 128 px image.

  512 RoIs per image on ResNet-161's 4096-deep 14x14 crops ran out of 24 GiB,
  so this step samples 64 RoIs; everything else is the detection_paper preset.
  """
  paper = configs.detection_paper()
  config = dataclasses.replace(paper, backbone="random", detector=dataclasses.replace(
      paper.detector, roi_batch_per_image=64))
  backbone = detection.load_backbone(None, config)
  model = detector_lib.FasterRCNN(backbone.model, 20, config.detector,
                                  feature=backbone.feature)
  count = detector_lib.parameter_count(model)
  print(f"paper-size detector (ResNet-161 backbone, residual head): {count:,} parameters")
  rng = np.random.default_rng(0)
  batch = {"image": tf.constant(rng.uniform(size=(1, 128, 128, 3)), tf.float32),
           "boxes": tf.constant([[[0.1, 0.1, 0.6, 0.7]]], tf.float32),
           "labels": tf.constant([[3]], tf.int64), "difficult": tf.constant([[False]])}
  variables = model.trainable_variables
  with tf.GradientTape() as tape:
    parts, total = detector_lib.batch_losses(model, batch)
  grads = tape.gradient(total, variables)
  assert np.isfinite(float(total)) and set(parts) == {
      "rpn_objectness", "rpn_box", "roi_class", "roi_box"}
  assert sum(g is not None for g in grads) == len(variables)
  keras.optimizers.SGD(0.001).apply_gradients(zip(grads, variables))
  assert count > 100_000_000


MIRRORED = """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from cpc_tf import configs, distribute
from cpc_tf.eval import detection
s = distribute.make_strategy("mirrored")
assert s.num_replicas_in_sync == 2
doc = detection.train_detection(None, configs.detection_tiny(), {out!r}, s, verbose=False)
print("rows", [(r["method"], r["split"]) for r in doc["rows"]])
"""


@pytest.mark.slow
def test_runs_under_a_mirrored_strategy(tmp_path):
  """Two logical CPU replicas: per-replica batches of 1 image, SGD + Adam groups."""
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", MIRRORED.format(out=str(tmp_path / "d"))],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  assert "('Random init detection_small (fine-tuned)', 'test')" in proc.stdout


def test_a_tfds_voc_dataset_trains_and_evaluates(tmp_path):
  """TFDS path, on an on-disk builder with the features of voc/2007 (no download)."""
  import tensorflow_datasets as tfds
  from test_data_pipelines import CpcTinyVoc  # noqa: F401 (registers the builder)
  data_dir = str(tmp_path / "tfds")
  tfds.builder("cpc_tiny_voc", data_dir=data_dir).download_and_prepare()
  config = tiny(**{"data.source": "cpc_tiny_voc", "data.data_dir": data_dir,
                   "data.split": "train", "data.max_examples": 0, "validation_split": "train",
                   "test_split": "train",
                   "color_drop_p": 0.8, "scale_range": (0.8, 1.25)})
  assert detection.class_names(config) == voc_folder.CLASS_NAMES
  assert detection.num_train_images(config) == 3
  batch = next(iter(detection.train_dataset(config, None, seed=0)))
  assert batch["image"].shape == (2, 64, 64, 3) and "id" not in batch
  backbone = detection.load_backbone(None, config)
  model = detector_lib.FasterRCNN(backbone.model, 20, config.detector, feature=backbone.feature)
  assert np.isfinite(float(detector_lib.batch_losses(model, batch)[1]))
  out = detection.evaluate_map(model, tf.distribute.get_strategy(),
                               detection.eval_dataset(config, "train", 0), 20)
  assert out["count"] == 3 and out["ap"].shape == (20,)


MULTI_WORKER = """
import json
from cpc_tf import configs, distribute
from cpc_tf.eval import detection
strategy = distribute.make_strategy("multi_worker")
doc = detection.train_detection(None, configs.detection_tiny(), {out!r}, strategy,
                                verbose=False)
print("RESULT " + json.dumps(doc["rows"]))
"""


@pytest.mark.slow
def test_two_workers_train_one_detector(tmp_path):
  """Two workers agree on every row; only the chief writes output_dir."""
  import json
  from test_multiworker import run_workers
  out = str(tmp_path / "d")
  rows = run_workers(MULTI_WORKER.format(out=out))
  assert rows[0] == rows[1] and len(rows[0]) == 3
  with open(os.path.join(out, "results.json")) as f:
    assert json.load(f)["rows"] == rows[0]
  leftovers = [d for d, _, _ in os.walk(out) if ".worker-" in d]
  assert not leftovers, leftovers


@pytest.mark.slow  # over 14 s here: kept out of the 15-minute default suite
def test_an_exported_savedmodel_is_a_backbone_and_is_fine_tuned(tmp_path):
  from cpc_tf import export, resnet
  encoder = resnet.build_encoder(configs.EncoderConfig(name="detection_small"), name="encoder")
  saved = export.export_encoder(encoder, configs.GridConfig(64, 16, 16, 64),
                                str(tmp_path / "export"))
  config = tiny(backbone="pretrained", frozen_steps=0, finetune_steps=1, eval_every=1)
  doc = detection.train_detection(saved, config, str(tmp_path / "out"), verbose=False)
  assert doc["encoder"] == saved
  assert [r["method"] for r in doc["rows"]] == ["CPC v2 savedmodel (fine-tuned)"] * 2
  # Phase 2 trained the export's weights and saved them with the heads.
  reader = tf.train.load_checkpoint(str(tmp_path / "out" / "finetune" / "best" / "ckpt"))
  names = [n for n in reader.get_variable_to_shape_map() if n.startswith("backbone/")]
  assert len(names) == len(encoder.weights)
  # Unchanged weights would give exactly the same per-tensor sums.
  saved_sums = sorted(float(np.sum(reader.get_tensor(n), dtype=np.float64)) for n in names)
  export_sums = sorted(float(np.sum(w.numpy(), dtype=np.float64)) for w in encoder.weights)
  assert saved_sums != export_sums


# ----------------------------------------------------------------------------
# A supervised baseline as the backbone (Table 3's supervised transfer)


@pytest.mark.slow  # over 14 s here: kept out of the 15-minute default suite
def test_a_supervised_baseline_is_the_backbone_end_to_end(tmp_path_factory, tmp_path,
                                                          monkeypatch):
  from cpc_tf.eval import encoders, report
  source = supervised_output_dir(tmp_path_factory)
  seen = {}
  load = detection.load_backbone

  def spy(*args, **kwargs):  # the backbone train_detection builds, and its first weights
    seen["backbone"] = backbone = load(*args, **kwargs)
    seen["start"] = [w.numpy().copy() for w in backbone.model.weights]
    return backbone

  monkeypatch.setattr(detection, "load_backbone", spy)
  config = tiny(backbone="pretrained", frozen_steps=1, finetune_steps=1, eval_every=1,
                validation_images=4, test_images=4)
  out = str(tmp_path / "det")
  doc = detection.train_detection(source, config, out, verbose=False)
  assert doc["encoder"] == f"supervised:{source}"
  assert [(r["method"], r["split"]) for r in doc["rows"]] == [
      ("Supervised detection_small (frozen)", "validation"),
      ("Supervised detection_small (fine-tuned)", "validation"),
      ("Supervised detection_small (fine-tuned)", "test")]
  backbone = seen["backbone"]
  assert backbone.feature == "stack3"
  # It started from the baseline's tested weights (test_encoders checks those
  # against the checkpoint bit for bit).
  tested = encoders.load(source).model.weights
  assert len(seen["start"]) == len(tested) == 68
  for start, want in zip(seen["start"], tested):
    np.testing.assert_array_equal(start, want.numpy())
  # Phase 2 fine-tuned it; its batch-norm statistics stayed fixed in both phases
  # (frozen backbone in inference mode; backbone_batch_stats=False).
  moved = [not np.array_equal(w.numpy(), s)
           for w, s in zip(backbone.model.weights, seen["start"])]
  moving = ["moving_" in w.path for w in backbone.model.weights]
  assert sum(moving) == 26 and not any(m for m, s in zip(moved, moving) if s)
  assert any(moved)
  # launch/report.py's Table-3 section names it beside the CPC and random rows.
  text = report.write_report([out], str(tmp_path / "report"))
  assert (f"| Supervised detection_small (fine-tuned) | supervised:{source} | synthetic |"
          in text)


def test_backbone_norm_statistics_move_only_in_training_mode(tmp_path_factory):
  config = tiny(backbone="pretrained")
  backbone = detection.load_backbone(supervised_output_dir(tmp_path_factory), config)
  model = detector_lib.FasterRCNN(backbone.model, 3, config.detector, feature=backbone.feature)
  batch = next(iter(detection.train_dataset(config, None, seed=0)))
  stats = [w for w in backbone.model.weights if "moving_" in w.path]
  before = [w.numpy().copy() for w in stats]
  for backbone_training in (False, None):  # None: the call's training=True
    detector_lib.batch_losses(model, batch, backbone_training=backbone_training)
    changed = [not np.array_equal(w.numpy(), b) for w, b in zip(stats, before)]
    assert all(changed) if backbone_training is None else not any(changed)


def test_a_supervised_encoder_not_at_stride_16_is_refused(tmp_path_factory):
  # The "tiny" spec keeps full resolution in its stem: its last stack is at stride 4.
  source = supervised_output_dir(tmp_path_factory, architecture="tiny", points=1)
  backbone = detection.load_backbone(source, tiny(backbone="pretrained"))
  assert backbone.method == "Supervised tiny"
  with pytest.raises(ValueError, match="its stride is not 16"):
    detector_lib.FasterRCNN(backbone.model, 3, configs.detection_tiny().detector,
                            feature=backbone.feature)


def test_a_run_from_before_backbone_batch_stats_resumes_as_it_trained(tmp_path):
  """Its config.json lacks the field; the version that wrote it trained the backbone's
  norm in training mode, so it resumes only with backbone_batch_stats=True."""
  import json
  from cpc_tf.eval import sweep
  out = tmp_path / "old"
  sweep.check_run(str(out), "detection", "random:detection_small", tiny())
  doc = json.loads((out / "config.json").read_text())
  del doc["config"]["backbone_batch_stats"]
  (out / "config.json").write_text(json.dumps(doc))
  (out / "frozen").mkdir()
  (out / "frozen" / "checkpoint").write_text("")  # the run has started
  with pytest.raises(ValueError, match="backbone_batch_stats: saved True \\(implied"):
    sweep.check_run(str(out), "detection", "random:detection_small", tiny())
  sweep.check_run(str(out), "detection", "random:detection_small",
                  tiny(backbone_batch_stats=True))
