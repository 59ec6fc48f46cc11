"""results.json / sweep.csv: schema, round trip, collect, clear errors."""

import json

import pytest

from cpc_tf.eval import results


def _rows():
  return [results.row("CPC v2 (frozen)", 0.01, 0.4, 0.7, "test", 12811),
          results.row("CPC v2 (fine-tuned)", 0.01, 0.46, 0.73, "validation", 12811)]


def test_write_read_round_trip_keeps_the_schema(tmp_path):
  path = str(tmp_path / "results.json")
  results.write_results(path, "efficient", "imagenet2012", "/runs/cpc", _rows(), {"a": 1})
  with open(path) as f:
    doc = json.load(f)
  assert set(doc) == {"protocol", "dataset", "encoder", "rows", "config"}
  assert set(doc["rows"][0]) == {"method", "label_fraction", "top1", "top5", "split",
                                 "num_train_examples"}
  assert results.read_results(str(tmp_path)) == doc  # a directory works too
  rows = results.collect([path, path])
  assert len(rows) == 4 and rows[0]["protocol"] == "efficient"
  assert rows[0]["encoder"] == "/runs/cpc" and rows[1]["split"] == "validation"


@pytest.mark.parametrize("changes, message", [
    ({"split": "train"}, "split='train'"),
    ({"top1": 71.5}, "top1=71.5 is not a fraction"),
    ({"label_fraction": 0.0}, "label_fraction=0.0"),
])
def test_bad_rows_are_refused(changes, message):
  good = dict(method="m", label_fraction=1.0, top1=0.5, top5=0.9, split="test",
              num_train_examples=10)
  with pytest.raises(ValueError, match=message):
    results.row(**{**good, **changes})


def test_bad_files(tmp_path):
  with pytest.raises(FileNotFoundError, match="has the evaluation binary finished"):
    results.read_results(str(tmp_path / "missing.json"))
  (tmp_path / "other.json").write_text(json.dumps({"rows": []}))
  with pytest.raises(ValueError, match="not a results file"):
    results.read_results(str(tmp_path / "other.json"))
  with pytest.raises(ValueError, match="protocol='segmentation'"):
    results.write_results(str(tmp_path / "r.json"), "segmentation", "voc", "x", [], {})


def test_sweep_csv_appends_and_parses(tmp_path):
  path = str(tmp_path / "sweep.csv")
  assert results.read_sweep(path) == []
  entry = dict(point=0, learning_rate=0.1, weight_decay=1e-5, dropout=0.5,
               batch_per_replica=16, val_top1=0.25, val_top5=0.5, best_step=2, steps=4)
  results.append_sweep(path, entry)
  results.append_sweep(path, {**entry, "point": 1, "val_top1": 0.5})
  rows = results.read_sweep(path)
  assert rows == [entry, {**entry, "point": 1, "val_top1": 0.5}]
  assert open(path).readline().strip() == ",".join(results.SWEEP_FIELDS)
  assert "CPC v2 (frozen)" in results.format_table(_rows())


def test_dynamics_rows_keep_their_checkpoint_step(tmp_path):
  rows = [dict(r, checkpoint_step=4, extra="dropped") for r in _rows()]
  config = {"steps": (0, 4)}
  doc = results.write_results(str(tmp_path / "results.json"), "dynamics", "fashion_mnist",
                              "/runs/cpc", rows, config)
  assert doc["rows"][0]["checkpoint_step"] == 4 and "extra" not in doc["rows"][0]
  assert doc["config"] == {"steps": [0, 4]}  # as a reader gets it back
  assert results.read_results(str(tmp_path)) == doc


@pytest.mark.parametrize("changes, message", [
    ({"checkpoint_step": -1}, r"rows\[0\]\.checkpoint_step=-1, expected an int >= 0"),
    ({"num_train_examples": 1.5}, r"rows\[0\]\.num_train_examples=1\.5"),
    ({"top5": "0.9"}, r"rows\[0\]\.top5='0\.9' is not a fraction"),
    ({"top1": True}, r"rows\[0\]\.top1=True is not a fraction"),
    ({"method": ""}, r"rows\[0\]\.method must be a non-empty string"),
])
def test_wrong_types_are_refused_on_write_and_on_read(tmp_path, changes, message):
  bad = dict(_rows()[0], **changes)
  with pytest.raises(ValueError, match="Not in the results schema: " + message):
    results.write_results(str(tmp_path / "r.json"), "dynamics", "d", "e", [bad], {})
  path = tmp_path / "results.json"
  path.write_text(json.dumps(dict(protocol="dynamics", dataset="d", encoder="e",
                                  config={}, rows=[bad])))
  with pytest.raises(ValueError, match=f"{path}: not a results file: " + message):
    results.read_results(str(path))


def _detection_rows():
  return [results.detection_row("CPC v2 resnet161 (fine-tuned)", 0.61, None, "validation", 5011),
          results.detection_row("CPC v2 resnet161 (fine-tuned)", 0.7,
                                {"aeroplane": 0.8, "bicycle": float("nan")}, "test", 5011)]


def test_detection_rows_round_trip(tmp_path):
  path = str(tmp_path / "results.json")
  results.write_results(path, "detection", "voc/2007", "/runs/cpc", _detection_rows(), {})
  doc = results.read_results(path)
  assert doc["protocol"] == "detection"
  assert doc["rows"][1] == {"method": "CPC v2 resnet161 (fine-tuned)", "split": "test",
                            "num_train_examples": 5011, "map": 0.7,
                            "ap": {"aeroplane": 0.8, "bicycle": None}}  # NaN: no ground truth
  table = results.format_table(doc["rows"])
  assert "mAP@0.5" in table and "70.0" in table and "5011" in table


@pytest.mark.parametrize("changes, message", [
    ({"map": 70.6}, "map=70.6 is not a fraction"),
    ({"ap": {"dog": 2.0}}, "ap must be null or map class names"),
    ({"split": "trainval"}, "split='trainval'"),
])
def test_bad_detection_rows_are_refused(changes, message):
  good = results.detection_row("m", 0.5, {"dog": 0.5}, "test", 10)
  with pytest.raises(ValueError, match=message):
    results.check_row({**good, **changes}, protocol="detection")
  # A classification row is not a detection row, and the other way round.
  with pytest.raises(ValueError, match="misses keys"):
    results.document("detection", "voc/2007", "x", [results.row("m", 1.0, 0.5, 0.5, "test", 1)],
                     {})
