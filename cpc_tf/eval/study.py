"""The claim study: does CPC pre-training make recognition data-efficient here?

ICLR Figure 1 / Table 5 on one dataset, end to end, with the package's own
protocols and nothing else:
  1. pre-train CPC                         `cpc_tf.train.pretrain`
  2. linear evaluation (supp. B) of the CPC encoder and of the same
     architecture at its random initialisation    `cpc_tf.eval.linear`
  3. per cell (label fraction, subset seed): few-label classification with the
     CPC encoder, frozen then fine-tuned (supp. C.2)  `cpc_tf.eval.efficient`,
     and the supervised baseline from pixels on the same labelled images and
     validation split (supp. C.1)                   `cpc_tf.eval.supervised`
  4. the report: a Table-5-shaped Markdown table (methods x label fractions,
     Top-1 on the test split, mean ± std over the subset seeds) with the linear
     rows, and a Figure-1-shaped plot   `cpc_tf.eval.report`

Layout of output_dir (rerunning the same command resumes: a finished stage
is read back, an unfinished one resumes from its checkpoints):
  config.json                    the StudyConfig; a rerun must match
  pretrain/                      the pre-training model_dir
  linear/cpc/, linear/random/    linear evaluation output dirs
  linear/random_init/            the random-initialisation model_dir (ckpt-0)
  efficient/<cell>/, supervised/<cell>/   e.g. efficient/1%-seed0/
  study.md, study.png, study.json   the report, the plot, every test cell
  timings.json                   wall seconds of each stage when it ran
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Callable

import tensorflow as tf

from cpc_tf import checkpoints, configs, data, records, train
from cpc_tf.configs import StudyConfig
from cpc_tf.distribute import is_chief
from cpc_tf.eval import dynamics, efficient, linear, report, results, supervised, sweep
from cpc_tf.stop import Preempted

CONFIG_FILE = checkpoints.CONFIG_FILE
TIMINGS_FILE = "timings.json"
SUMMARY_FILE = "study.json"
RANDOM_METHOD = "Random init linear"  # the linear row of the untrained encoder
LINEAR_METHOD = "CPC v2 linear"
TITLE = "CPC v2 against supervised learning from pixels"
# The claim's targets (issue 10): CPC linear >= random init + 10 points; at the
# smallest fraction CPC's best phase above the supervised baseline.
LINEAR_MARGIN = 0.10


def cells(config: StudyConfig) -> list[tuple[float, int]]:
  """(label fraction, subset seed) pairs: every seed at the smallest fraction."""
  smallest = min(config.label_fractions)
  return [(f, s) for f in sorted(config.label_fractions)
          for s in (config.seeds if f == smallest else config.seeds[:1])]


def cell_name(fraction: float, seed: int) -> str:
  return f"{report.format_fraction(fraction)}-seed{seed}"


def cell_config(protocol_config, fraction: float, seed: int):
  """An efficient or supervised config with the cell's subset."""
  return configs.replace(protocol_config, **{"subset.label_fraction": fraction,
                                             "subset.seed": seed})


def run(config: StudyConfig, output_dir: str,
        strategy: tf.distribute.Strategy | None = None, verbose: bool = True) -> dict:
  """Runs (or resumes) every stage; returns the study.json dict.

  Raises Preempted when SIGTERM / SIGINT stopped pre-training (saved), and
  cpc_tf.eval.loop.Stopped when it stopped an evaluation (saved): a rerun resumes.
  """
  strategy = strategy or tf.distribute.get_strategy()
  chief = is_chief(strategy)
  log = print if verbose and chief else (lambda *_: None)
  checkpoints.guard_config(output_dir, {"study": configs.to_dict(config)},
                           lambda _: False, write=chief, started=True,
                           what="a study with other settings",
                           hint="Use a new --output_dir, or the saved settings")
  timings_path = os.path.join(output_dir, TIMINGS_FILE)
  timings = records.read_json(timings_path) if tf.io.gfile.exists(timings_path) else {}

  def stage(name: str, done: Callable[[], bool], work: Callable[[], object]) -> None:
    if done():
      log(f"[study] {name}: done before, read back")
      return
    log(f"[study] {name}: running")
    start = time.perf_counter()
    work()
    timings[name] = round(time.perf_counter() - start, 1)
    log(f"[study] {name}: {timings[name]:.0f} s")
    if chief:
      records.write_json(timings_path, timings)

  def has_results(directory: str) -> Callable[[], bool]:
    return lambda: tf.io.gfile.exists(os.path.join(directory, results.RESULTS_FILE))

  pretrain_dir = os.path.join(output_dir, "pretrain")

  def pretrain():
    result = train.pretrain(config.pretrain, pretrain_dir, strategy, verbose=verbose)
    if result.preempted:
      raise Preempted(f"Pre-training stopped at step {result.step}; its checkpoint is "
                      "saved. Rerun the same command to resume.", result.status)

  stage("pretrain", lambda: _pretrained(config, pretrain_dir), pretrain)
  linear_dir = os.path.join(output_dir, "linear")
  cpc_dir, random_dir = os.path.join(linear_dir, "cpc"), os.path.join(linear_dir, "random")
  stage("linear/cpc", has_results(cpc_dir),
        lambda: linear.train_linear(pretrain_dir, config.linear, cpc_dir, strategy,
                                    verbose=verbose, method=LINEAR_METHOD))
  stage("linear/random", has_results(random_dir),
        lambda: linear.train_linear(
            dynamics.random_init_dir(pretrain_dir, linear_dir, config.random_init_seed),
            config.linear, random_dir, strategy, step=0, verbose=verbose,
            method=RANDOM_METHOD))
  files = [os.path.join(cpc_dir, results.RESULTS_FILE),
           os.path.join(random_dir, results.RESULTS_FILE)]
  for fraction, seed in cells(config):
    name = cell_name(fraction, seed)
    for protocol in ("efficient", "supervised"):
      directory = os.path.join(output_dir, protocol, name)
      if protocol == "efficient":
        work = lambda d=directory: efficient.train_efficient(  # noqa: E731
            pretrain_dir, cell_config(config.efficient, fraction, seed), d, strategy,
            verbose=verbose)
      else:
        work = lambda d=directory: supervised.train_supervised(  # noqa: E731
            cell_config(config.supervised, fraction, seed), d, strategy, verbose=verbose)
      stage(f"{protocol}/{name}", has_results(directory), work)
      files.append(os.path.join(directory, results.RESULTS_FILE))
  summary = write_report(files, output_dir, config, timings, write=chief)
  log(summary["markdown"])
  return summary


def _pretrained(config: StudyConfig, model_dir: str) -> bool:
  """Whether model_dir holds the last step's checkpoint of config.pretrain."""
  steps = checkpoints.checkpoint_steps(model_dir) if tf.io.gfile.isdir(model_dir) else []
  pre = config.pretrain
  total = train.total_steps(pre, None if pre.train_steps > 0 else data.num_examples(pre.data))
  return bool(steps) and max(steps) >= total


def write_report(files: list[str], output_dir: str, config: StudyConfig,
                 timings: dict, write: bool = True) -> dict:
  """study.md, study.png and study.json from the stages' results files."""
  loaded = report.load(files)
  curves = report.curves_from_results(loaded, "test", aggregate=True)
  few_label = [c for c in curves if c.protocol in ("efficient", "supervised")]
  markdown = "\n".join([
      report.markdown_report(curves, TITLE, loaded),
      "## Training images", "", images_table(loaded, config), "",
      "## Targets", "", *(f"- {line}" for line in targets(curves, config)), "",
      "## Wall time", "", *(f"- {k}: {v:.0f} s" for k, v in timings.items()),
      f"- total of the stages timed: {sum(timings.values()):.0f} s", ""])
  summary = {"markdown": markdown, "timings": timings,
             "cells": {c.label: {report.format_fraction(f): p for f, p in c.points.items()}
                       for c in curves}}
  if write:
    records.write_text(os.path.join(output_dir, "study.md"), markdown)
    report.plot(few_label, os.path.join(output_dir, "study.png"), TITLE)
    records.write_json(os.path.join(output_dir, SUMMARY_FILE), summary)
  return summary


def images_table(loaded, config: StudyConfig) -> str:
  """How many images each row trained on (labelled; pre-training unlabelled)."""
  pre = config.pretrain
  lines = ["| Method | Label fraction | Labelled training images |", "|---|---:|---:|"]
  seen = set()
  for _, document in loaded:
    for row in document["rows"]:
      key = (row["method"], row["label_fraction"], row["num_train_examples"])
      if row["split"] == "test" and key not in seen:
        seen.add(key)
        lines.append(f"| {row['method']} | {report.format_fraction(row['label_fraction'])} "
                     f"| {row['num_train_examples']} |")
  lin, eff, sup = config.linear, config.efficient, config.supervised
  points = len(sweep.sweep_points(sup.sweep, sup.hparams))
  lines += ["", "What each run trained for, the same at every label fraction (so beyond the "
            "smallest fraction a row can be limited by its steps rather than its labels):",
            f"- pre-training (no labels): {pre.train_steps} steps x {pre.batch_size} "
            f"images = {pre.train_steps * pre.batch_size} image crops",
            f"- linear: {lin.train_steps} steps x {lin.batch_size} images",
            f"- CPC few-label: {eff.frozen_steps} frozen + {eff.finetune_steps} fine-tuned "
            f"steps x {eff.hparams.batch_per_replica} images per replica",
            f"- supervised: {sup.train_steps} steps x {sup.hparams.batch_per_replica} images "
            f"per replica, for each of {points} sweep point(s)"]
  return "\n".join(lines)


def targets(curves, config: StudyConfig) -> list[str]:
  """The claim's two targets, met or missed, with their numbers."""
  by_label = {c.label: c for c in curves}
  out = []
  cpc, rand = by_label.get(LINEAR_METHOD), by_label.get(RANDOM_METHOD)
  if cpc and rand:
    a, b = cpc.points[1.0]["top1"], rand.points[1.0]["top1"]
    verdict = "met" if a - b >= LINEAR_MARGIN else "MISSED"
    out.append(f"linear: CPC {100 * a:.1f}% vs random init {100 * b:.1f}% "
               f"({100 * (a - b):+.1f} points; target +{100 * LINEAR_MARGIN:.0f}): {verdict}")
  smallest = min(config.label_fractions)
  cpc_best = max((c.points[smallest]["top1"], c.label) for c in curves
                 if c.protocol == "efficient" and smallest in c.points)
  sup = [c for c in curves if c.protocol == "supervised" and smallest in c.points]
  if sup:
    s = sup[0].points[smallest]["top1"]
    verdict = "met" if cpc_best[0] > s else "MISSED"
    out.append(f"{report.format_fraction(smallest)} labels: best CPC phase ({cpc_best[1]}) "
               f"{100 * cpc_best[0]:.1f}% vs {sup[0].label} {100 * s:.1f}% "
               f"(mean over the seeds): {verdict}")
  return out
