"""Result files of the evaluation binaries: results.json and sweep.csv.

<output_dir>/results.json:
  {"protocol": "linear" | "efficient" | "supervised",
   "dataset": str,
   "encoder": str,          # model_dir (or model_dir@step), or an architecture name
   "rows": [{"method": str, "label_fraction": float, "top1": float in [0, 1],
             "top5": float in [0, 1], "split": "test" | "validation",
             "num_train_examples": int}, ...],
   "config": {...}}         # the resolved config (configs.to_dict)

<output_dir>/sweep.csv: one line per finished sweep point, columns SWEEP_FIELDS.
"""

from __future__ import annotations

import csv
import io
import json
import os

import tensorflow as tf

RESULTS_FILE = "results.json"
SWEEP_FILE = "sweep.csv"
PROTOCOLS = ("linear", "efficient", "supervised")
SPLITS = ("test", "validation")
ROW_FIELDS = ("method", "label_fraction", "top1", "top5", "split", "num_train_examples")
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


def check_row(r: dict) -> None:
  missing = [k for k in ROW_FIELDS if k not in r]
  if missing:
    raise ValueError(f"Result row {r} lacks {missing}.")
  if r["split"] not in SPLITS:
    raise ValueError(f"Result row split={r['split']!r}; choose one of {SPLITS}.")
  for k in ("top1", "top5"):
    if not 0.0 <= r[k] <= 1.0:
      raise ValueError(f"Result row {k}={r[k]} is not a fraction in [0, 1].")
  if not 0.0 < r["label_fraction"] <= 1.0:
    raise ValueError(f"Result row label_fraction={r['label_fraction']} is not in (0, 1].")


def _write_atomic(path: str, text: str) -> None:
  tf.io.gfile.makedirs(os.path.dirname(path) or ".")
  tmp = path + ".tmp"
  with tf.io.gfile.GFile(tmp, "w") as f:
    f.write(text)
  tf.io.gfile.rename(tmp, path, overwrite=True)


def document(protocol: str, dataset: str, encoder: str, rows: list[dict],
             config: dict) -> dict:
  """The checked results.json dict."""
  if protocol not in PROTOCOLS:
    raise ValueError(f"protocol={protocol!r}; choose one of {PROTOCOLS}.")
  for r in rows:
    check_row(r)
  return {"protocol": protocol, "dataset": str(dataset), "encoder": str(encoder),
          "rows": [{k: r[k] for k in ROW_FIELDS} for r in rows], "config": config}


def write_results(path: str, protocol: str, dataset: str, encoder: str, rows: list[dict],
                  config: dict) -> dict:
  """Writes results.json (atomically) and returns what was written."""
  doc = document(protocol, dataset, encoder, rows, config)
  _write_atomic(path, json.dumps(doc, indent=2, sort_keys=True))
  return doc


def read_results(path: str) -> dict:
  """results.json (or a directory holding one) -> the checked dict."""
  if tf.io.gfile.isdir(path):
    path = os.path.join(path, RESULTS_FILE)
  if not tf.io.gfile.exists(path):
    raise FileNotFoundError(f"{path} not found: has the evaluation binary finished?")
  with tf.io.gfile.GFile(path) as f:
    doc = json.load(f)
  missing = [k for k in ("protocol", "dataset", "encoder", "rows", "config") if k not in doc]
  if missing or doc["protocol"] not in PROTOCOLS:
    raise ValueError(f"{path} is not a results file (missing {missing} or unknown "
                     f"protocol {doc.get('protocol')!r}).")
  for r in doc["rows"]:
    check_row(r)
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
  rows = read_sweep(path) + [{k: entry[k] for k in SWEEP_FIELDS}]
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fieldnames=SWEEP_FIELDS, lineterminator="\n")
  writer.writeheader()
  writer.writerows(rows)
  _write_atomic(path, buffer.getvalue())


def format_table(rows: list[dict]) -> str:
  """Rows as the fixed-width table the binaries print."""
  lines = [f"{'method':<28} {'split':<10} {'labels':>7} {'top-1':>7} {'top-5':>7} "
           f"{'train images':>12}"]
  for r in rows:
    lines.append(f"{r['method']:<28} {r['split']:<10} {r['label_fraction']:>7.2%} "
                 f"{r['top1']:>7.2%} {r['top5']:>7.2%} {r['num_train_examples']:>12d}")
  return "\n".join(lines)
