"""A small-scale ICLR Figure 3: pre-train each rung for one budget, then linear eval.

Each preset of `AblationConfig.presets` (by default the v1 -> v2 ladder,
`configs.LADDER`) becomes a run config (`rung_config`): the preset, its values
swapped by `substitutions` (paper-size encoder / grid / jitter -> small ones),
the ablation's data source, batch, budget and seed, then `overrides`. Each run
is pre-trained (`cpc_tf.train.pretrain`) and evaluated with the linear protocol
(supp. B) through `linear_protocol`, the one call into it.

Layout of output_dir (rerunning the same call resumes from it):
  ablation.json            the AblationConfig; a rerun must match (presets may change)
  <preset>/pretrain/       the pre-training model_dir (config.json, ckpt-*)
  <preset>/linear/         the linear protocol's output_dir (results.json once done)
  ablation.csv, ablation.md, ablation.png   the table and the Figure-3-like chart
A preset whose linear results.json exists is skipped; an interrupted one
resumes from its checkpoints; a preset whose run config equals an earlier
one's (e.g. +MC when both encoders map to the same small one) reuses its result.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os

import tensorflow as tf

from cpc_tf import checkpoints, configs, distribute, records, stop, train
from cpc_tf.eval import linear, results
from cpc_tf.configs import AblationConfig, LinearEvalConfig, PretrainConfig

CONFIG_FILE = "ablation.json"
CSV_FILE = "ablation.csv"
MARKDOWN_FILE = "ablation.md"
PLOT_FILE = "ablation.png"
CSV_FIELDS = ("preset", "label", "directions", "top1", "top5", "delta_top1", "same_as",
              "paper")
# ICLR Figure 3's caption: orange, green, blue for 1, 2 and 4 directions.
DIRECTION_COLOURS = {1: "tab:orange", 2: "tab:green", 4: "tab:blue"}
OTHER_COLOUR = "tab:gray"  # 3 directions: not in the figure


@dataclasses.dataclass(frozen=True)
class RungResult:
  preset: str
  label: str  # the paper's label for ladder rungs, else the preset name
  directions: int
  top1: float
  top5: float
  same_as: str  # "" or the earlier preset whose run this one reused
  paper: str  # the texts' figure for this step ("" off the ladder)


def linear_protocol(model_dir: str, config: LinearEvalConfig, output_dir: str,
                    strategy: tf.distribute.Strategy, verbose: bool) -> dict:
  """The linear protocol (supp. B) on model_dir's encoder -> results.json dict.

  The one place this module reaches the protocol.
  """
  return linear.train_linear(model_dir, config, output_dir, strategy, verbose=verbose)


def _field(config, path: str):
  value = config
  for part in path.split("."):
    if not dataclasses.is_dataclass(value) or not hasattr(value, part):
      raise ValueError(f"{path!r} is not a PretrainConfig field (e.g. "
                       "'model.encoder.name', 'optimizer.learning_rate').")
    value = getattr(value, part)
  return value


def rung_config(ablation: AblationConfig, preset: str) -> PretrainConfig:
  """The run config of `preset` in this ablation (see the module docstring)."""
  config = configs.preset(preset)
  changes = {}
  for path, paper_value, small_value in ablation.substitutions:
    if _field(config, path) == paper_value:
      changes[path] = small_value
  config = configs.replace(config, **changes)
  # The ablation's source; the pipeline recipe (v1 / v2) is an axis, the rung's.
  data = dataclasses.replace(ablation.data, pipeline=config.data.pipeline)
  config = dataclasses.replace(config, data=data, batch_size=ablation.batch_size,
                               train_steps=ablation.train_steps, seed=ablation.seed)
  for path, _ in ablation.overrides:
    _field(config, path)
  try:  # the configs validate themselves when built
    return configs.replace(config, **{
        p: tuple(v) if isinstance(v, list) else v for p, v in ablation.overrides})
  except ValueError as e:
    raise ValueError(f"Preset {preset!r} in this ablation: {e}") from e


def _label(preset: str) -> tuple[str, str]:
  for rung in configs.LADDER:
    if rung.name == preset:
      return rung.label, rung.paper
  return preset, ""


def _check_output_dir(ablation: AblationConfig, output_dir: str) -> None:
  """Writes ablation.json, or refuses an output_dir made with other settings."""
  path = os.path.join(output_dir, CONFIG_FILE)
  mine = json.loads(json.dumps(configs.to_dict(ablation)))
  mine.pop("presets")
  if tf.io.gfile.exists(path):
    theirs = records.read_json(path, f"Move it aside and rerun with the settings the "
                               f"ablation was started with; the runs in {output_dir} "
                               "are kept.")
    theirs.pop("presets", None)
    differences = checkpoints.diff(theirs, mine)
    if differences:
      name, old, new = differences[0]
      raise ValueError(
          f"{output_dir} holds an ablation with other settings ({name}: {old!r} there, "
          f"{new!r} now). Rerun with the same settings to resume, or use a new output_dir "
          "(only the list of presets may change).")
  records.write_json(path, {**mine, "presets": list(ablation.presets)})


def _finished_step(model_dir: str) -> int:
  latest = tf.train.latest_checkpoint(model_dir)
  return int(latest.rsplit("-", 1)[1]) if latest else 0


def run(ablation: AblationConfig, output_dir: str,
        strategy: tf.distribute.Strategy | None = None,
        verbose: bool = True) -> list[RungResult]:
  """Pre-trains and evaluates every preset (resuming), writes the table and chart.

  Returns one RungResult per preset, in the given order. Raises stop.Stopped
  when SIGTERM / SIGINT stops a pre-training run (its checkpoint is saved).
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = distribute.is_chief(strategy)
  log = print if verbose and chief else (lambda *args, **kwargs: None)
  if chief:
    _check_output_dir(ablation, output_dir)
  run_configs = {p: rung_config(ablation, p) for p in ablation.presets}  # fail early
  out: list[RungResult] = []
  by_config: dict[str, RungResult] = {}
  for i, preset in enumerate(ablation.presets, start=1):
    config = run_configs[preset]
    label, paper = _label(preset)
    key = json.dumps(configs.to_dict(config), sort_keys=True)
    head = f"[{i}/{len(ablation.presets)}] {preset} ({label})"
    if key in by_config:
      earlier = by_config[key]
      log(f"{head}: same run config as {earlier.preset}, result reused", flush=True)
      out.append(dataclasses.replace(earlier, preset=preset, label=label, paper=paper,
                                     same_as=earlier.preset))
      continue
    model_dir = os.path.join(output_dir, preset, "pretrain")
    linear_dir = os.path.join(output_dir, preset, "linear")
    results_path = os.path.join(linear_dir, results.RESULTS_FILE)
    if tf.io.gfile.exists(results_path):
      log(f"{head}: done earlier, skipped", flush=True)
      document = results.read_results(results_path)
    else:
      if _finished_step(model_dir) < config.train_steps:
        log(f"{head}: pre-training {config.train_steps} steps", flush=True)
        try:
          train.pretrain(config, model_dir, strategy, verbose=verbose)
        except stop.Stopped as e:
          raise stop.Stopped(f"Pre-training of {preset}: {e}", e.status) from e
      log(f"{head}: linear evaluation", flush=True)
      document = linear_protocol(model_dir, ablation.linear, linear_dir, strategy, verbose)
    row = next(r for r in document["rows"] if r["split"] == "test")
    rung = RungResult(preset, label, len(config.model.head.directions), row["top1"],
                      row["top5"], "", paper)
    by_config[key] = rung
    out.append(rung)
  if chief:
    write_outputs(out, output_dir)
  return out


# ----------------------------------------------------------------------------
# Table and chart

def table_rows(rungs: list[RungResult]) -> list[dict]:
  """CSV_FIELDS dicts; delta_top1 is the change from the row before (None first)."""
  rows = []
  for i, r in enumerate(rungs):
    delta = None if i == 0 else r.top1 - rungs[i - 1].top1
    rows.append({"preset": r.preset, "label": r.label, "directions": r.directions,
                 "top1": r.top1, "top5": r.top5, "delta_top1": delta,
                 "same_as": r.same_as, "paper": r.paper})
  return rows


def markdown_table(rungs: list[RungResult]) -> str:
  lines = ["| preset | label | directions | Top-1 | Top-5 | change | paper (ImageNet) |",
           "|---|---|---|---|---|---|---|"]
  for row in table_rows(rungs):
    delta = "" if row["delta_top1"] is None else f"{100 * row['delta_top1']:+.1f}"
    note = f" (= {row['same_as']})" if row["same_as"] else ""
    lines.append(f"| {row['preset']}{note} | {row['label']} | {row['directions']} | "
                 f"{100 * row['top1']:.1f}% | {100 * row['top5']:.1f}% | {delta} | "
                 f"{row['paper']} |")
  return "\n".join(lines) + "\n"


def _write(path: str, data, mode: str = "w") -> None:
  records.write_text(path, data, mode)


def write_outputs(rungs: list[RungResult], output_dir: str) -> None:
  """ablation.csv, ablation.md and ablation.png in output_dir."""
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, CSV_FIELDS)
  writer.writeheader()
  writer.writerows(table_rows(rungs))
  _write(os.path.join(output_dir, CSV_FILE), buffer.getvalue())
  _write(os.path.join(output_dir, MARKDOWN_FILE),
         "# Linear classification per rung (cf. ICLR Figure 3)\n\n" + markdown_table(rungs))
  plot(rungs, os.path.join(output_dir, PLOT_FILE))


def bar_colour(directions: int) -> str:
  return DIRECTION_COLOURS.get(directions, OTHER_COLOUR)


def plot(rungs: list[RungResult], path: str) -> None:
  """Bars of Top-1 (%) per rung, coloured by the number of directions (ICLR Fig. 3)."""
  import matplotlib
  matplotlib.use("Agg")  # files only; no display on servers
  from matplotlib import pyplot as plt
  from matplotlib.patches import Patch

  if not rungs:
    raise ValueError("Nothing to plot: no rungs.")
  fig, ax = plt.subplots(figsize=(max(6.0, 0.8 * len(rungs) + 2), 4.5))
  heights = [100.0 * r.top1 for r in rungs]
  bars = ax.bar(range(len(rungs)), heights, color=[bar_colour(r.directions) for r in rungs])
  for bar, h in zip(bars, heights):
    ax.annotate(f"{h:.1f}", (bar.get_x() + bar.get_width() / 2, h), ha="center",
                va="bottom", fontsize="small")
  ax.set_xticks(range(len(rungs)))
  ax.set_xticklabels([r.label for r in rungs], rotation=45, ha="right")
  ax.set_ylabel("linear classification Top-1 (%)")
  shown = sorted({r.directions for r in rungs})
  ax.legend(handles=[Patch(color=bar_colour(d), label=f"{d} direction{'s' * (d > 1)}")
                     for d in shown], loc="upper left", fontsize="small", ncol=len(shown))
  ax.set_ylim(0, max(heights) * 1.3 + 1)  # room for the one-row legend above the labels
  ax.grid(True, axis="y", alpha=0.3)
  fig.suptitle("From CPC v1 to CPC v2 (cf. ICLR Figure 3)")
  fig.tight_layout()
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  _write(path, buffer.getvalue(), "wb")
