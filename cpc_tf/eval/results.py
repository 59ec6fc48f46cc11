"""Result files of the evaluation binaries: results.json and sweep.csv.

<output_dir>/results.json:
  {"protocol": "linear" | "efficient" | "supervised" | "dynamics" | "detection"
               | "pixels",
   "dataset": str,
   "encoder": str,          # model_dir (or model_dir@step), or an architecture name
   "rows": [{"method": str, "label_fraction": float in (0, 1],
             "top1": float in [0, 1], "top5": float in [0, 1],
             "split": "test" | "validation", "num_train_examples": int >= 0,
             "checkpoint_step": int >= 0 (optional; "dynamics" rows)}, ...],
   "config": {...},         # the resolved config (configs.to_dict)
   "test": {"split": str, "layout": str, "num_examples": int}}  # optional: the
                            # test split and how it was found (cpc_tf.eval.held_out)
Protocol "detection" (ICLR 4.3) has rows of DETECTION_ROW_FIELDS instead:
  {"method": str, "split": "test" | "validation", "num_train_examples": int >= 0,
   "map": float in [0, 1] or null (no ground truth),   # VOC07 mAP@0.5, a fraction
   "ap": {class name: float in [0, 1] or null} or null (validation rows)}

The protocols are written by cpc_tf.eval ("linear", "efficient",
"supervised", "detection"), cpc_tf.drivers.dynamics ("dynamics") and
cpc_tf.eval.pixels ("pixels", the raw-pixel baselines). This module is the one
writer, reader and checker of the schema; `check_document` names the first
field that does not fit.

<output_dir>/sweep.csv: one line per finished sweep point, columns SWEEP_FIELDS.
"""

from __future__ import annotations

import csv
import io
import json
import os
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from cpc_tf import records

RESULTS_FILE = "results.json"
SWEEP_FILE = "sweep.csv"
PROTOCOLS = ("linear", "efficient", "supervised", "dynamics", "detection", "pixels")
SPLITS = ("test", "validation")
ROW_FIELDS = ("method", "label_fraction", "top1", "top5", "split", "num_train_examples")
OPTIONAL_ROW_FIELDS = ("checkpoint_step",)
DETECTION_ROW_FIELDS = ("method", "split", "num_train_examples", "map", "ap")
DOCUMENT_FIELDS = ("protocol", "dataset", "encoder", "rows", "config")
TEST_FIELDS = ("split", "layout", "num_examples")
SWEEP_FIELDS = ("point", "learning_rate", "weight_decay", "dropout", "batch_per_replica",
                "val_top1", "val_top5", "best_step", "steps")


def row(method: str, label_fraction: float, top1: float, top5: float, split: str,
        num_train_examples: int) -> dict:
  """One checked results row."""
  out = {"method": str(method), "label_fraction": float(label_fraction),
         "top1": float(top1), "top5": float(top5), "split": str(split),
         "num_train_examples": int(num_train_examples)}
  check_row(out)
  return out


def detection_row(method: str, mean_ap: float | None, ap: dict | None, split: str,
                  num_train_examples: int) -> dict:
  """One checked row of protocol "detection"; NaN APs (no ground truth) become None."""
  def fraction(x):
    return None if x is None or np.isnan(x) else float(x)

  out = {"method": str(method), "split": str(split),
         "num_train_examples": int(num_train_examples), "map": fraction(mean_ap),
         "ap": None if ap is None else {str(k): fraction(v) for k, v in ap.items()}}
  check_row(out, protocol="detection")
  return out


def check_row(r: dict, where: str = "row", protocol: str = "linear") -> None:
  """Raises ValueError naming the first field of `r` that does not fit the schema."""
  problem = (_detection_row_problem if protocol == "detection" else _row_problem)(r, where)
  if problem:
    raise ValueError(f"{problem}.")


def _row_problem(r, where: str) -> str | None:
  if not isinstance(r, dict):
    return f"{where} is not an object"
  missing = [k for k in ROW_FIELDS if k not in r]
  if missing:
    return f"{where} misses keys {missing}"
  checks = [
      (isinstance(r["method"], str) and r["method"],
       f"{where}.method must be a non-empty string"),
      (_is_number(r["label_fraction"]) and 0.0 < r["label_fraction"] <= 1.0,
       f"{where}.label_fraction={r['label_fraction']!r}, expected a number in (0, 1]"),
      *((_is_number(r[k]) and 0.0 <= r[k] <= 1.0,
         f"{where}.{k}={r[k]!r} is not a fraction in [0, 1] (not percent)")
        for k in ("top1", "top5")),
      (r["split"] in SPLITS, f"{where}.split={r['split']!r}, expected one of {SPLITS}"),
      *((_is_int(r[k]) and r[k] >= 0, f"{where}.{k}={r[k]!r}, expected an int >= 0")
        for k in ("num_train_examples", *OPTIONAL_ROW_FIELDS) if k in r),
  ]
  return next((message for ok, message in checks if not ok), None)


def _detection_row_problem(r, where: str) -> str | None:
  if not isinstance(r, dict):
    return f"{where} is not an object"
  missing = [k for k in DETECTION_ROW_FIELDS if k not in r]
  if missing:
    return f"{where} misses keys {missing}"

  def fraction_or_none(x):
    return x is None or (_is_number(x) and 0.0 <= x <= 1.0)

  ap = r["ap"]
  checks = [
      (isinstance(r["method"], str) and r["method"],
       f"{where}.method must be a non-empty string"),
      (r["split"] in SPLITS, f"{where}.split={r['split']!r}, expected one of {SPLITS}"),
      (_is_int(r["num_train_examples"]) and r["num_train_examples"] >= 0,
       f"{where}.num_train_examples={r['num_train_examples']!r}, expected an int >= 0"),
      (fraction_or_none(r["map"]),
       f"{where}.map={r['map']!r} is not a fraction in [0, 1] or null (not percent)"),
      (ap is None or (isinstance(ap, dict) and all(
          isinstance(k, str) and fraction_or_none(v) for k, v in ap.items())),
       f"{where}.ap must be null or map class names to fractions in [0, 1] or null"),
  ]
  return next((message for ok, message in checks if not ok), None)


def _document_problem(doc) -> str | None:
  if not isinstance(doc, dict):
    return f"the top level is a {type(doc).__name__}, not an object"
  missing = [k for k in DOCUMENT_FIELDS if k not in doc]
  if missing:
    return f"missing keys {missing}"
  if doc["protocol"] not in PROTOCOLS:
    return f"protocol={doc['protocol']!r}, expected one of {PROTOCOLS}"
  for key in ("dataset", "encoder"):
    if not isinstance(doc[key], str):
      return f"{key} must be a string"
  if not isinstance(doc["config"], dict):
    return "config must be an object"
  if not isinstance(doc["rows"], list):
    return "rows must be a list"
  if "test" in doc and not (isinstance(doc["test"], dict)
                            and sorted(doc["test"]) == sorted(TEST_FIELDS)
                            and _is_int(doc["test"]["num_examples"])):
    return f"test must be an object with the keys {TEST_FIELDS}"
  check = _detection_row_problem if doc["protocol"] == "detection" else _row_problem
  return next(filter(None, (check(r, f"rows[{i}]") for i, r in enumerate(doc["rows"]))),
              None)


def _is_number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool)


def _is_int(x) -> bool:
  return isinstance(x, int) and not isinstance(x, bool)


write_text = records.write_text  # the one atomic writer


def write_csv(path: str, fields: Sequence[str], rows: Iterable[dict]) -> None:
  """A header of `fields`, then those fields of every row; written atomically."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
  writer.writeheader()
  writer.writerows({k: r[k] for k in fields} for r in rows)
  write_text(path, buffer.getvalue())


def document(protocol: str, dataset: str, encoder: str, rows: list[dict],
             config: dict, test: dict | None = None) -> dict:
  """The checked results.json dict, as a reader of the file gets it back (lists,
  not tuples); ValueError names the first field that does not fit the schema."""
  fields = (DETECTION_ROW_FIELDS if protocol == "detection"
            else (*ROW_FIELDS, *OPTIONAL_ROW_FIELDS))
  doc = {"protocol": protocol, "dataset": str(dataset), "encoder": str(encoder),
         "rows": [{k: r[k] for k in fields if k in r} for r in rows],
         "config": config}
  if test is not None:
    doc["test"] = test
  doc = json.loads(json.dumps(doc))
  problem = _document_problem(doc)
  if problem:
    raise ValueError(f"Not in the results schema: {problem}.")
  return doc


def write_results(path: str, protocol: str, dataset: str, encoder: str, rows: list[dict],
                  config: dict, test: dict | None = None) -> dict:
  """Writes results.json (atomically) and returns what was written."""
  doc = document(protocol, dataset, encoder, rows, config, test)
  write_text(path, json.dumps(doc, indent=2, sort_keys=True))
  return doc


def read_results(path: str) -> dict:
  """results.json (or a directory holding one) -> the checked dict.

  FileNotFoundError when it does not exist; ValueError, naming the file and the
  first field that breaks the schema, when it is not a results file.
  """
  if tf.io.gfile.isdir(path):
    path = os.path.join(path, RESULTS_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: has the evaluation binary finished?")
  with tf.io.gfile.GFile(path) as f:
    try:
      doc = json.load(f)
    except json.JSONDecodeError as e:
      raise ValueError(f"{path}: not valid JSON ({e})") from e
  problem = _document_problem(doc)
  if problem:
    raise ValueError(f"{path}: not a results file: {problem}")
  return doc


def collect(paths) -> list[dict]:
  """Rows of several results files (or output dirs), each with its file's
  "protocol", "dataset" and "encoder" added, in the order given."""
  out = []
  for path in paths:
    doc = read_results(path)
    for r in doc["rows"]:
      out.append({**r, "protocol": doc["protocol"], "dataset": doc["dataset"],
                  "encoder": doc["encoder"]})
  return out


def read_sweep(path: str) -> list[dict]:
  """Rows of a sweep.csv with numbers parsed; [] when the file does not exist."""
  if not tf.io.gfile.exists(path):
    return []
  with tf.io.gfile.GFile(path) as f:
    rows = list(csv.DictReader(io.StringIO(f.read())))
  ints = ("point", "batch_per_replica", "best_step", "steps")
  return [{k: (int(v) if k in ints else float(v)) for k, v in r.items()} for r in rows]


def append_sweep(path: str, entry: dict) -> None:
  """Adds one finished sweep point to sweep.csv (rewritten whole, atomically)."""
  write_csv(path, SWEEP_FIELDS, read_sweep(path) + [entry])


def format_table(rows: list[dict]) -> str:
  """Rows as the fixed-width table the binaries print."""
  if rows and "map" in rows[0]:
    return format_detection_table(rows)
  lines = [f"{'method':<28} {'split':<10} {'labels':>7} {'top-1':>7} {'top-5':>7} "
           f"{'train images':>12}"]
  for r in rows:
    lines.append(f"{r['method']:<28} {r['split']:<10} {r['label_fraction']:>7.2%} "
                 f"{r['top1']:>7.2%} {r['top5']:>7.2%} {r['num_train_examples']:>12d}")
  return "\n".join(lines)


def format_detection_table(rows: list[dict]) -> str:
  """Detection rows as a fixed-width table: method, split, mAP (%), training images."""
  lines = [f"{'method':<44} {'split':<10} {'mAP@0.5':>8} {'train images':>12}"]
  for r in rows:
    value = "-" if r["map"] is None else f"{100.0 * r['map']:.1f}"
    lines.append(f"{r['method']:<44} {r['split']:<10} {value:>8} "
                 f"{r['num_train_examples']:>12d}")
  return "\n".join(lines)
