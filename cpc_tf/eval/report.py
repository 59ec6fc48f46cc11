"""Result files -> the paper's tables and figures.

Every evaluation binary writes `<output_dir>/results.json` in the schema of
`cpc_tf.eval.results` (which reads and checks them, naming the file and the first
field that does not fit). This module turns the rows of one split (default
"test") into
  * Markdown tables shaped like ICLR Table 5 / Table 2: one row per method,
    one column per label fraction, a Top-1 table and a Top-5 table, accuracies
    in percent with one decimal;
  * a PNG like ICLR Figure 1 / arXiv v1 Figure 5: accuracy against the label
    fraction on a log axis, one curve per method (supervised methods red,
    the rest blue, the paper's published numbers dashed).

Glossary:
  row      one measured (method, label fraction) cell of a results file
  curve    one method's rows, ordered by label fraction
  label    a curve's name in tables and legends: the method, with
           " (step N)" appended when the rows carry a checkpoint_step
  PAPER    the published ImageNet numbers (ICLR Table 5, SPEC.md section 3),
           added as rows whose labels say "paper"
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
from typing import Iterable, Sequence

import numpy as np
import tensorflow as tf

from cpc_tf.eval import results as results_lib


METRICS = ("top1", "top5")
METRIC_TITLES = {"top1": "Top-1 accuracy (%)", "top5": "Top-5 accuracy (%)"}
PAPER_FRACTIONS = (0.01, 0.02, 0.05, 0.10, 0.20, 0.50, 1.00)
# ICLR Table 5 (appendix A.1; the data of Figure 1), ImageNet, in percent at
# PAPER_FRACTIONS. SPEC.md section 3 quotes the same numbers.
PAPER = {
    "Supervised on pixels (paper)": {
        "top1": (23.1, 34.8, 50.2, 60.0, 67.6, 74.4, 78.0),
        "top5": (44.1, 59.9, 75.2, 82.1, 87.9, 91.8, 93.8)},
    "ResNet on CPC v2, fine-tuned (paper)": {
        "top1": (46.3, 54.7, 64.1, 69.7, 73.0, 77.3, 80.6),
        "top5": (72.9, 79.6, 86.1, 89.5, 91.4, 93.6, 95.2)},
}
PAPER_SOURCE = "ICLR Table 5 (the data of Figure 1), ImageNet"
# ICLR Table 3 (section 4.3): Faster R-CNN on PASCAL VOC 2007 test, mAP in percent.
PAPER_DETECTION = (
    ("Supervised ImageNet ResNet-152 (paper)", 74.7),
    ("Faster R-CNN on CPC v2, ResNet-101, fine-tuned (paper)", 70.6),
    ("Faster R-CNN on CPC v2, ResNet-161, fine-tuned (paper)", 72.7),
)
PAPER_DETECTION_SOURCE = "ICLR Table 3, PASCAL VOC 2007 test"
DETECTION_TITLE = "Transfer to detection (ICLR Table 3)"


class ReportError(ValueError):
  """A result file is missing, unreadable or not in the results schema."""


@dataclasses.dataclass(frozen=True)
class Curve:
  """One table row / plot line: accuracies (fractions in [0, 1]) per label fraction."""

  label: str
  protocol: str  # a results protocol, or "paper"
  # label_fraction -> {"top1": float, "top5": float}; cells averaged over
  # repeats (`curves_from_results(aggregate=True)`) also hold "top1_std",
  # "top5_std" (sample standard deviation) and "n" (how many repeats).
  points: dict
  source: str  # the file it came from, or PAPER_SOURCE
  checkpoint_step: int | None = None

  @property
  def supervised(self) -> bool:
    return self.protocol == "supervised" or self.label.startswith("Supervised")


# ----------------------------------------------------------------------------
# Reading

def expand(patterns: Sequence[str]) -> list[str]:
  """Result files named by paths, globs or directories, in order, without repeats.

  A directory (given, or matched by a glob) stands for its results.json;
  matched directories without one (e.g. unfinished runs) are passed over.
  Raises ReportError naming every pattern that yields no file.
  """
  paths, empty = [], []
  for pattern in patterns:
    matched = sorted(tf.io.gfile.glob(pattern)) if glob.has_magic(pattern) else [pattern]
    files = []
    for path in matched:
      if tf.io.gfile.isdir(path):
        path = os.path.join(path, results_lib.RESULTS_FILE)
      if tf.io.gfile.exists(path) and not tf.io.gfile.isdir(path):
        files.append(path)
    if not files:
      empty.append(pattern)
    paths += [p for p in files if p not in paths]
  if empty:
    raise ReportError("No result file matched " + ", ".join(repr(p) for p in empty) +
                      ". Pass results.json paths, globs or output directories.")
  return paths


def load(patterns: Sequence[str]) -> list[tuple[str, dict]]:
  """[(path, results dict)] for every matched file; ReportError names a bad file."""
  out = []
  for path in expand(patterns):
    try:
      out.append((path, results_lib.read_results(path)))
    except (ValueError, FileNotFoundError) as e:  # these name the file already
      raise ReportError(str(e)) from e
    except (OSError, tf.errors.OpError) as e:
      raise ReportError(f"{path}: {e}") from e
  return out


def parse_renames(specs: Sequence[str]) -> list[tuple[str, str, str | None]]:
  """["OLD=NEW" or "OLD=NEW@PATH", ...] -> [(old, new, path or None)].

  PATH limits a rename to the result files at or under it (as given to
  --results, or their directory), so two runs reporting the same method can be
  told apart; without it every file's OLD rows are renamed.
  """
  out = []
  for spec in specs:
    names, _, where = spec.partition("@")
    old, sep, new = names.partition("=")
    if not sep or not old.strip() or not new.strip():
      raise ReportError(f"--rename={spec!r}: expected 'OLD=NEW' or 'OLD=NEW@PATH', e.g. "
                        "--rename='CPC v2 (frozen)=CPC v2 wd 1e-4@runs/wd'.")
    out.append((old.strip(), new.strip(), where.strip() or None))
  return out


def _under(path: str, where: str) -> bool:
  path, where = os.path.normpath(path), os.path.normpath(where)
  return path == where or path.startswith(where.rstrip("/") + "/")


def rename_methods(loaded: Sequence[tuple[str, dict]],
                   renames: Sequence[tuple[str, str, str | None]]
                   ) -> list[tuple[str, dict]]:
  """`loaded` with each row's method renamed (parse_renames); ReportError for a
  rename that matches no row, so a typo is not silently ignored."""
  used = set()
  out = []
  for path, doc in loaded:
    rows = []
    for row in doc["rows"]:
      for i, (old, new, where) in enumerate(renames):
        if row["method"] == old and (where is None or _under(path, where)):
          row = {**row, "method": new}
          used.add(i)
          break
      rows.append(row)
    out.append((path, {**doc, "rows": rows}))
  for i, (old, new, where) in enumerate(renames):
    if i not in used:
      methods = sorted({r["method"] for _, d in loaded for r in d["rows"]})
      raise ReportError(f"--rename={old}={new}{'@' + where if where else ''} matches no "
                        f"row; the methods are: {', '.join(methods)}.")
  return out


def curves_from_results(loaded: Iterable[tuple[str, dict]], split: str = "test",
                        aggregate: bool = False) -> list[Curve]:
  """Groups the rows of `split` into curves by label, keeping first-seen order.

  Rows of other splits are left out (the evaluation binaries also record the
  validation accuracy of the selected model). Two rows (in one file or two)
  with the same label and label fraction raise ReportError, as the table
  would have to drop one of them silently; with `aggregate` they are repeats
  (e.g. subsets drawn with different seeds) and the cell is their mean, with
  the sample standard deviation and the count.
  """
  points, meta, origin = {}, {}, {}
  for path, results in loaded:
    for row in results["rows"]:
      if row["split"] != split:
        continue
      step = row.get("checkpoint_step")
      label = row["method"] if step is None else f"{row['method']} (step {step})"
      fraction = float(row["label_fraction"])
      cell = (label, fraction)
      if cell in origin and not aggregate:
        raise ReportError(
            f"{path}: {label!r} at label fraction {fraction:g} is also in "
            f"{origin[cell]}; tell them apart with --rename='{label}=NEW NAME@PATH' "
            "(launch/report.py), or report them separately.")
      origin[cell] = path
      points.setdefault(label, {}).setdefault(fraction, []).append(
          {m: float(row[m]) for m in METRICS})
      meta.setdefault(label, (results["protocol"], path, step))
  return [Curve(label, protocol, {f: _cell(v) for f, v in points[label].items()}, path, step)
          for label, (protocol, path, step) in meta.items()]


def _cell(repeats: list[dict]) -> dict:
  """One table cell from its repeats: the values, or their mean, std and count."""
  if len(repeats) == 1:
    return repeats[0]
  out = {"n": len(repeats)}
  for m in METRICS:
    values = np.array([r[m] for r in repeats])
    out[m] = float(values.mean())
    out[f"{m}_std"] = float(values.std(ddof=1))  # sample std: a handful of seeds
  return out


def paper_curves() -> list[Curve]:
  return [Curve(label, "paper", {f: {m: values[m][i] / 100.0 for m in METRICS}
                                 for i, f in enumerate(PAPER_FRACTIONS)}, PAPER_SOURCE)
          for label, values in PAPER.items()]


# ----------------------------------------------------------------------------
# Tables

def format_fraction(fraction: float) -> str:
  """0.01 -> "1%", 0.005 -> "0.5%", 1.0 -> "100%"."""
  return f"{100.0 * fraction:.6g}%"


def format_cell(point: dict, metric: str) -> str:
  """74.25 -> "74.3"; a mean over repeats -> "74.3 ± 1.2 (n=3)" (percent)."""
  text = f"{100.0 * point[metric]:.1f}"
  if "n" in point:
    text += f" ± {100.0 * point[f'{metric}_std']:.1f} (n={point['n']})"
  return text


def markdown_table(curves: Sequence[Curve], metric: str) -> str:
  """One Markdown table: rows = curves, columns = every label fraction seen.

  Cells are accuracies in percent with one decimal; a curve without a value
  at some fraction shows "-"; an averaged cell shows "mean ± std (n=N)".
  """
  if metric not in METRICS:
    raise ValueError(f"metric={metric!r}; choose one of {METRICS}.")
  fractions = sorted({f for c in curves for f in c.points})
  lines = ["| Method | " + " | ".join(format_fraction(f) for f in fractions) + " |",
           "|---|" + "---:|" * len(fractions)]
  for c in curves:
    cells = [format_cell(c.points[f], metric) if f in c.points else "-"
             for f in fractions]
    lines.append(f"| {c.label} | " + " | ".join(cells) + " |")
  return "\n".join(lines)


def markdown_report(curves: Sequence[Curve], title: str = "Efficient classification",
                    sources: Sequence[tuple[str, dict]] = (), split: str = "test") -> str:
  """Top-1 and Top-5 tables under a title, then where the rows came from."""
  parts = [f"# {title}", ""]
  for metric in METRICS:
    parts += [f"## {METRIC_TITLES[metric]}", "", markdown_table(curves, metric), ""]
  notes = [f"- `{path}`: protocol {r['protocol']}, dataset {r['dataset']}, encoder "
           f"{r['encoder']}, {split} split"
           for path, r in sources if any(row["split"] == split for row in r["rows"])]
  if any(c.protocol == "paper" for c in curves):
    notes.append(f"- rows marked (paper): {PAPER_SOURCE}; not measured here")
  if notes:
    parts += ["Sources:", ""] + notes + [""]
  return "\n".join(parts)


# ----------------------------------------------------------------------------
# Figures

def plot(curves: Sequence[Curve], path: str, title: str = "Efficient classification",
         ordered_shades: bool = False) -> None:
  """Writes a PNG: accuracy (%) against label fraction (log axis), Top-1 and Top-5.

  Colours follow ICLR Figure 1: supervised curves red, the others blue; the
  pixel baselines (protocol "pixels": no network at all) grey. With
  `ordered_shades` the blue curves go from light to dark in the given order
  (arXiv v1 Figure 5: later checkpoints darker). Paper curves are dashed.
  """
  import matplotlib
  matplotlib.use("Agg")  # files only; no display on servers
  from matplotlib import pyplot as plt
  from matplotlib import ticker

  if not curves:
    raise ValueError("Nothing to plot: no curves.")
  colour = {}
  families = {"Reds": lambda c: c.supervised and c.protocol != "pixels",
              "Greys": lambda c: c.protocol == "pixels",  # no network, no pre-training
              "Blues": lambda c: not c.supervised and c.protocol != "pixels"}
  for cmap_name, member in families.items():
    members = [c for c in curves if member(c)]
    cmap = plt.get_cmap(cmap_name)
    for i, c in enumerate(members):
      t = i / max(len(members) - 1, 1)
      colour[c.label] = cmap(0.35 + 0.6 * t if ordered_shades else 0.9 - 0.45 * t)

  fractions = sorted({f for c in curves for f in c.points})
  fig, axes = plt.subplots(1, len(METRICS), figsize=(11, 4.5), squeeze=False)
  for ax, metric in zip(axes[0], METRICS):
    for c in curves:
      xs = sorted(c.points)
      # Error bars: the standard deviation over repeats, where cells are averaged.
      ax.errorbar([100.0 * x for x in xs], [100.0 * c.points[x][metric] for x in xs],
                  yerr=[100.0 * c.points[x].get(f"{metric}_std", 0.0) for x in xs],
                  color=colour[c.label], marker="x" if c.protocol == "paper" else "o",
                  linestyle="--" if c.protocol == "paper" else "-", label=c.label,
                  capsize=3)
    ax.set_xscale("log")
    ax.set_xticks([100.0 * f for f in fractions])
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda x, _: f"{x:g}%"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())
    ax.set_xlabel("labelled examples (fraction of the training set)")
    ax.set_ylabel(METRIC_TITLES[metric])
    ax.grid(True, which="major", alpha=0.3)
  axes[0][-1].legend(fontsize="small", loc="best")  # where it hides the fewest points
  fig.suptitle(title)
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  directory = os.path.dirname(path)
  if directory:
    tf.io.gfile.makedirs(directory)
  with tf.io.gfile.GFile(path, "wb") as f:  # local paths and gs:// alike
    f.write(buffer.getvalue())


# ----------------------------------------------------------------------------
# All of it

def write_report(patterns: Sequence[str], output_dir: str, *, paper: bool = False,
                 title: str = "Efficient classification", split: str = "test",
                 renames: Sequence[str] = (), aggregate: bool = False) -> str:
  """Reads the result files, writes report.md and report.png; returns the Markdown.

  Only rows of `split` are reported ("test": the final numbers; "validation":
  the model-selection accuracy). `renames`: "OLD=NEW[@PATH]" (parse_renames).
  `aggregate`: repeated cells are averaged (`curves_from_results`).
  Files of protocol "detection" become a
  Table-3-like section (`detection_report`); report.png plots the
  classification rows only, and is not written when there are none.
  """
  if split not in results_lib.SPLITS:
    raise ValueError(f"split={split!r}; choose one of {results_lib.SPLITS}.")
  loaded = rename_methods(load(patterns), parse_renames(renames))
  detection = [(p, r) for p, r in loaded if r["protocol"] == "detection"]
  classification = [(p, r) for p, r in loaded if r["protocol"] != "detection"]
  curves = curves_from_results(classification, split, aggregate)
  detection_rows = [(p, r, row) for p, r in detection for row in r["rows"]
                    if row["split"] == split]
  if not curves and not detection_rows:
    raise ReportError("The result files " + ", ".join(p for p, _ in loaded) +
                      f" hold no rows of the {split} split: nothing to report.")
  parts = []
  if curves:
    if paper:
      curves += paper_curves()
    parts.append(markdown_report(curves, title, classification, split))
  if detection_rows:
    parts.append(detection_report(detection_rows, paper=paper, split=split))
  text = "\n".join(parts)
  tf.io.gfile.makedirs(output_dir)
  with tf.io.gfile.GFile(os.path.join(output_dir, "report.md"), "w") as f:
    f.write(text)
  if curves:
    plot(curves, os.path.join(output_dir, "report.png"), title)
  return text


def detection_report(rows: Sequence[tuple[str, dict, dict]], paper: bool = False,
                     split: str = "test") -> str:
  """(path, results dict, detection row) triples -> Markdown like ICLR Table 3.

  A table of mAP (percent, one decimal) per method, the paper's Table 3 rows
  when `paper`; then the per-class AP of the rows that carry it, and the sources.
  """
  lines = [f"# {DETECTION_TITLE}", "", "## mAP@0.5 (%), PASCAL VOC 2007 protocol", "",
           "| Method | Encoder | Dataset | mAP |", "|---|---|---|---:|"]
  for _, doc, row in rows:
    value = "-" if row["map"] is None else f"{100.0 * row['map']:.1f}"
    lines.append(f"| {row['method']} | {doc['encoder']} | {doc['dataset']} | {value} |")
  if paper:
    for label, value in PAPER_DETECTION:
      lines.append(f"| {label} | - | voc/2007 | {value:.1f} |")
  lines.append("")
  per_class = [(doc, row) for _, doc, row in rows if row["ap"]]
  if per_class:
    classes = []
    for _, row in per_class:
      classes += [c for c in row["ap"] if c not in classes]
    lines += ["## AP per class (%)", "", "| Method | " + " | ".join(classes) + " |",
              "|---|" + "---:|" * len(classes)]
    for _, row in per_class:
      cells = ["-" if row["ap"].get(c) is None else f"{100.0 * row['ap'][c]:.1f}"
               for c in classes]
      lines.append(f"| {row['method']} | " + " | ".join(cells) + " |")
    lines.append("")
  lines += ["Sources:", ""]
  seen = []
  for path, doc, _ in rows:
    if path not in seen:
      seen.append(path)
      lines.append(f"- `{path}`: protocol detection, dataset {doc['dataset']}, encoder "
                   f"{doc['encoder']}, {split} split")
  if paper:
    lines.append(f"- rows marked (paper): {PAPER_DETECTION_SOURCE}; not measured here")
  return "\n".join(lines + [""])
