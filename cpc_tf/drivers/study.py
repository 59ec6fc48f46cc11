"""The claim study: does CPC pre-training make recognition data-efficient here?

ICLR Figure 1 / Table 5 on one dataset, end to end, with the package's own
protocols and nothing else:
  1. pre-train CPC                         `cpc_tf.train.pretrain`
  2. linear evaluation (supp. B) of the CPC encoder and of the same
     architecture at its random initialisation    `cpc_tf.eval.linear`
  3. per cell (label fraction, subset seed): few-label classification with the
     CPC encoder, frozen then fine-tuned (supp. C.2)  `cpc_tf.eval.efficient`,
     the supervised baseline from pixels on the same labelled images and
     validation split (supp. C.1)                   `cpc_tf.eval.supervised`,
     and logistic regression and kNN on raw pixels on them   `cpc_tf.eval.pixels`
  4. the report: a Table-5-shaped Markdown table (methods x label fractions,
     Top-1 on the test split, mean ± std over the subset seeds) with the linear
     rows, how each arm stopped, the targets, and a Figure-1-shaped plot
     `cpc_tf.eval.report`

Layout of output_dir (rerunning the same command resumes: a finished stage
is read back, an unfinished one resumes from its checkpoints):
  config.json                    the StudyConfig; a rerun must match
  pretrain/                      the pre-training model_dir
  linear/cpc/, linear/random/    linear evaluation output dirs
  linear/random_init/            the random-initialisation model_dir (ckpt-0)
  efficient/<cell>/, supervised/<cell>/, pixels/<cell>/   e.g. efficient/1%-seed0/
  study.md, study.png, study.json   the report, the plot, every test cell
  study_map.png                  2-D map (UMAP / t-SNE / PCA) of the test images'
                                 embeddings: CPC beside the random initialisation
  timings.json                   {"stages": wall seconds of each stage when it ran,
                                  "stages_total", "setup" (given by the caller),
                                  "this_invocation": wall seconds of the last call}
"""

from __future__ import annotations

import dataclasses
import io
import os
import time
from typing import Callable

import numpy as np
import tensorflow as tf

from cpc_tf import checkpoints, configs, data, embed, records, train
from cpc_tf.configs import StudyConfig
from cpc_tf.distribute import is_chief
from cpc_tf.drivers import dynamics
from cpc_tf.eval import (efficient, embedding_map, held_out, linear, pixels, report, results,
                         supervised)
from cpc_tf.eval import loop as loop_lib
from cpc_tf.eval import sweep

CONFIG_FILE = checkpoints.CONFIG_FILE
TIMINGS_FILE = "timings.json"
SUMMARY_FILE = "study.json"
MAP_FILE = "study_map.png"  # 2-D map of the test embeddings, CPC beside random init
MAP_IMAGES = 2000  # test images drawn on the map
RANDOM_METHOD = "Random init linear"  # the linear row of the untrained encoder
LINEAR_METHOD = "CPC v2 linear"
TITLE = "CPC v2 against supervised learning and raw-pixel baselines"
SMOKE_BANNER = ("**SMOKE RUN** (preset with smoke=True): budgets far too short for the "
                "claim; these numbers only show that every stage runs.")
# The claim's targets (issue 21): CPC linear >= random init + 12 points and above
# logistic regression on pixels with all labels; at the smallest fraction CPC's
# best phase above every baseline by more than the subset seeds' std.
LINEAR_MARGIN = 0.12
PIXEL_LR = pixels.LOGISTIC_METHOD


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
        strategy: tf.distribute.Strategy | None = None, verbose: bool = True,
        setup_seconds: float | None = None) -> dict:
  """Runs (or resumes) every stage; returns the study.json dict.

  setup_seconds: the caller's set-up time before this call (scripts/study.sh
  measures it), added to the whole run's time in timings.json.
  Raises stop.Stopped when SIGTERM / SIGINT stopped a stage (saved): a rerun
  resumes.
  """
  started = time.perf_counter()
  strategy = strategy or tf.distribute.get_strategy()
  chief = is_chief(strategy)
  log = print if verbose and chief else (lambda *_: None)
  checkpoints.guard_config(output_dir, {"study": configs.to_dict(config)},
                           lambda _: False, write=chief, started=True,
                           what="a study with other settings",
                           hint="Use a new --output_dir, or the saved settings")
  timings_path = os.path.join(output_dir, TIMINGS_FILE)
  timings = (records.read_json(timings_path).get("stages", {})
             if tf.io.gfile.exists(timings_path) else {})

  def write_timings() -> dict:
    doc = {"stages": timings, "stages_total": round(sum(timings.values()), 1),
           "setup": setup_seconds,
           "this_invocation": round(time.perf_counter() - started, 1)}
    if chief:
      records.write_json(timings_path, doc)
    return doc

  def stage(name: str, done: Callable[[], bool], work: Callable[[], object]) -> None:
    if done():
      log(f"[study] {name}: done before, read back")
      return
    log(f"[study] {name}: running")
    start = time.perf_counter()
    work()
    timings[name] = round(time.perf_counter() - start, 1)
    log(f"[study] {name}: {timings[name]:.0f} s")
    write_timings()

  def has_results(directory: str) -> Callable[[], bool]:
    return lambda: tf.io.gfile.exists(os.path.join(directory, results.RESULTS_FILE))

  pretrain_dir = os.path.join(output_dir, "pretrain")

  def pretrain():
    train.pretrain(config.pretrain, pretrain_dir, strategy, verbose=verbose)

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
  map_path = os.path.join(output_dir, MAP_FILE)
  if chief:  # a picture, not a result: only the chief draws it
    stage("map", lambda: tf.io.gfile.exists(map_path), lambda: write_map(
        config, map_path, {LINEAR_METHOD: (pretrain_dir, None, cpc_dir),
                           RANDOM_METHOD: (dynamics.random_init_dir(
                               pretrain_dir, linear_dir, config.random_init_seed), 0,
                               random_dir)}))
  files = [os.path.join(cpc_dir, results.RESULTS_FILE),
           os.path.join(random_dir, results.RESULTS_FILE)]
  for fraction, seed in cells(config):
    name = cell_name(fraction, seed)
    efficient_config = cell_config(config.efficient, fraction, seed)
    works = {
        "efficient": lambda d: efficient.train_efficient(
            pretrain_dir, efficient_config, d, strategy, verbose=verbose),
        "supervised": lambda d: supervised.train_supervised(
            cell_config(config.supervised, fraction, seed), d, strategy, verbose=verbose),
        # The same subset, validation carve and test split as the CPC classifier's.
        "pixels": lambda d: pixels.run_cell(config.pixels, efficient_config.subset, d,
                                            log=log),
    }
    for protocol, work in works.items():
      if protocol == "pixels" and not chief:
        continue  # no network, nothing to distribute: the chief alone runs and writes it
      directory = os.path.join(output_dir, protocol, name)
      stage(f"{protocol}/{name}", has_results(directory),
            lambda w=work, d=directory: w(d))
      files.append(os.path.join(directory, results.RESULTS_FILE))
  timing = write_timings()
  summary = write_report(files, output_dir, config, timing, write=chief)
  log(summary["markdown"])
  return summary


def write_map(config: StudyConfig, path: str, encoders: dict) -> str:
  """The 2-D map of the test images' embeddings, one panel per encoder.

  encoders: panel title -> (model_dir, step or None, linear output dir). The
  embedding is the mean of the image's patch vectors, which the cached linear
  evaluation already holds for every test image (`linear.FEATURES_FILE`);
  without that cache the first MAP_IMAGES test images are encoded here.
  Returns the projection used ("umap", "tsne" or "pca").
  """
  test = held_out.test_data(config.linear.data, config.linear.test_split)
  panels = {}
  for title, (model_dir, step, linear_dir) in encoders.items():
    cached = os.path.join(linear_dir, linear.FEATURES_FILE)
    if tf.io.gfile.exists(cached):
      with tf.io.gfile.GFile(cached, "rb") as f:
        saved = np.load(io.BytesIO(f.read()))
        panels[title] = (saved["test_x"], saved["test_y"])
    else:
      got = embed.embed_dataset(dataclasses.replace(test, max_examples=MAP_IMAGES),
                                model_dir, step=step)
      panels[title] = (got.embeddings, got.labels)
  return embedding_map.write_map(path, panels, data.class_names(test),
                                 max_points=MAP_IMAGES, seed=config.random_init_seed)


def _pretrained(config: StudyConfig, model_dir: str) -> bool:
  """Whether model_dir holds the last step's checkpoint of config.pretrain."""
  steps = checkpoints.checkpoint_steps(model_dir) if tf.io.gfile.isdir(model_dir) else []
  pre = config.pretrain
  total = train.total_steps(pre, None if pre.train_steps > 0 else data.num_examples(pre.data))
  return bool(steps) and max(steps) >= total


def write_report(files: list[str], output_dir: str, config: StudyConfig,
                 timing: dict, write: bool = True) -> dict:
  """study.md, study.png and study.json from the stages' results files."""
  loaded = report.load(files)
  curves = report.curves_from_results(loaded, "test", aggregate=True)
  few_label = [c for c in curves if c.protocol in ("efficient", "supervised", "pixels")]
  stages = timing["stages"]
  whole = [f"- total of the stages timed: {timing['stages_total']:.0f} s"]
  if timing.get("setup") is not None:
    whole.append(f"- set-up before the study: {timing['setup']:.0f} s")
  whole.append(f"- this invocation, start to report: {timing['this_invocation']:.0f} s")
  markdown = "\n".join([
      *([SMOKE_BANNER, ""] if config.smoke else []),
      report.markdown_report(curves, TITLE, loaded),
      "## Training images", "", images_table(loaded, config), "",
      "## How each arm stopped", "", stopping_table(output_dir, config), "",
      "## Targets", "", *(f"- {line}" for line in targets(curves, config)), "",
      "## Wall time", "", *(f"- {k}: {v:.0f} s" for k, v in stages.items()), *whole, ""])
  summary = {"markdown": markdown, "timings": timing, "smoke": config.smoke,
             "cells": {c.label: {report.format_fraction(f): p for f, p in c.points.items()}
                       for c in curves}}
  if write:
    records.write_text(os.path.join(output_dir, "study.md"), markdown)
    title = f"SMOKE RUN: {TITLE}" if config.smoke else TITLE
    report.plot(few_label, os.path.join(output_dir, "study.png"), title)
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
  lines += ["", "Budgets: epochs of each run's labelled images, early-stopped on its "
            "validation carve (best validated weights tested), each capped in steps:",
            f"- pre-training (no labels): {pre.train_steps} steps x {pre.batch_size} "
            f"images = {pre.train_steps * pre.batch_size} image crops",
            f"- linear: {_budget(lin.train_epochs, lin.train_steps)} x {lin.batch_size} "
            f"images, patience {lin.patience}",
            f"- CPC few-label: frozen {_budget(eff.frozen_epochs, eff.frozen_steps)}, "
            f"fine-tuned {_budget(eff.finetune_epochs, eff.finetune_steps)}, x "
            f"{eff.hparams.batch_per_replica} images per replica, patience {eff.patience}",
            f"- supervised: {_budget(sup.train_epochs, sup.train_steps)} x "
            f"{sup.hparams.batch_per_replica} images per replica, patience {sup.patience}, "
            f"for each of {points} sweep point(s)",
            f"- pixels: logistic regression up to {config.pixels.max_epochs} epochs, patience "
            f"{config.pixels.patience}, per weight decay of {config.pixels.weight_decays}; "
            f"kNN k from {config.pixels.ks}"]
  return "\n".join(lines)


def _budget(epochs: float, steps: int) -> str:
  return f"up to {epochs:g} epochs (at most {steps} steps)" if epochs > 0 else f"{steps} steps"


def stopping_table(output_dir: str, config: StudyConfig) -> str:
  """Each trained arm's steps, best step and whether validation stopped it.

  "no" in the last column means the run used its whole budget (epochs or the
  step cap) with validation still rising at times: a figure that more steps
  could change.
  """
  lines = ["| Run | Steps | Best validated step | Stopped by validation |",
           "|---|---:|---:|---|"]
  runs = [("linear/cpc", os.path.join(output_dir, "linear", "cpc", "linear")),
          ("linear/random", os.path.join(output_dir, "linear", "random", "linear"))]
  for fraction, seed in cells(config):
    name = cell_name(fraction, seed)
    for protocol, phases in (("efficient", ("frozen", "finetune")),
                             ("supervised", (supervised.PHASE,))):
      for phase in phases:
        pattern = os.path.join(output_dir, protocol, name, "point-*", phase)
        for directory in sorted(tf.io.gfile.glob(pattern)):
          point = os.path.basename(os.path.dirname(directory))
          runs.append((f"{protocol}/{name} {phase} ({point})", directory))
  for label, directory in runs:
    path = os.path.join(directory, loop_lib.DONE_FILE)
    if tf.io.gfile.exists(path):
      done = records.read_json(path)
      lines.append(f"| {label} | {done['steps']} | {done['best_step']} | "
                   f"{'yes' if done.get('stopped_early') else 'no'} |")
  return "\n".join(lines)


def _mean_std(curve, fraction: float) -> tuple[float, float]:
  point = curve.points[fraction]
  return point["top1"], point.get("top1_std", 0.0)


def targets(curves, config: StudyConfig) -> list[str]:
  """The claim's targets, met or missed, with their numbers (issue 21)."""
  by_label = {c.label: c for c in curves}
  out = []
  cpc, rand = by_label.get(LINEAR_METHOD), by_label.get(RANDOM_METHOD)
  if cpc and rand and 1.0 in cpc.points and 1.0 in rand.points:
    a, b = cpc.points[1.0]["top1"], rand.points[1.0]["top1"]
    verdict = "met" if a - b >= LINEAR_MARGIN else "MISSED"
    out.append(f"linear: CPC {100 * a:.1f}% vs random init {100 * b:.1f}% "
               f"({100 * (a - b):+.1f} points; target +{100 * LINEAR_MARGIN:.0f}): {verdict}")
    lr = by_label.get(PIXEL_LR)
    if lr and 1.0 in lr.points:
      p = lr.points[1.0]["top1"]
      verdict = "met" if a > p else "MISSED"
      out.append(f"linear: CPC {100 * a:.1f}% vs {PIXEL_LR} with all labels "
                 f"{100 * p:.1f}% ({100 * (a - p):+.1f} points; target: above): {verdict}")
  fractions = sorted({f for c in curves for f in c.points if c.protocol != "linear"})
  gaps = []
  for fraction in fractions:
    cpc_cells = [(_mean_std(c, fraction), c.label) for c in curves
                 if c.protocol == "efficient" and fraction in c.points]
    base_cells = [(_mean_std(c, fraction), c.label) for c in curves
                  if c.protocol in ("supervised", "pixels") and fraction in c.points]
    if not cpc_cells or not base_cells:
      continue
    (best, best_std), best_label = max(cpc_cells)
    (top, top_std), top_label = max(base_cells)
    gaps.append((fraction, best - top))
    name = report.format_fraction(fraction)
    if fraction == fractions[0]:
      margin = max([best_std] + [std for (_, std), _ in base_cells])
      beaten = all(best - mean > margin for (mean, _), _ in base_cells)
      out.append(f"{name} labels: best CPC phase ({best_label}) {100 * best:.1f}% vs the "
                 f"best baseline ({top_label}) {100 * top:.1f}% ({100 * (best - top):+.1f} "
                 f"points; target: above every baseline by more than the seeds' std, "
                 f"{100 * margin:.1f}): {'met' if beaten else 'MISSED'}")
    else:
      out.append(f"{name} labels: best CPC phase ({best_label}) {100 * best:.1f}% vs the "
                 f"best baseline ({top_label}) {100 * top:.1f}% "
                 f"({100 * (best - top):+.1f} points)")
  if len(gaps) > 1:
    # ICLR Figure 1's shape: CPC ahead at every fraction, by less as labels grow.
    ahead = all(g > 0 for _, g in gaps)
    shrinks = all(later <= earlier for (_, earlier), (_, later) in zip(gaps, gaps[1:]))
    if ahead and shrinks:
      shape = "CPC's lead narrows as the labels grow, as in ICLR Figure 1"
    elif ahead:
      shape = "CPC leads everywhere, but its lead does not narrow monotonically"
    else:
      shape = "NOT ICLR Figure 1's shape: CPC is behind the best baseline where negative"
    out.append("best CPC phase minus the best baseline: "
               + " -> ".join(f"{100 * g:+.1f}" for _, g in gaps)
               + f" points from the smallest to the largest fraction: {shape}")
  return out
