"""Learning dynamics (arXiv v1 7.3, Figure 5): accuracy over pre-training time.

For each chosen pre-training checkpoint of a model_dir and each label
fraction, phase 1 of supp. C.2 (`cpc_tf.eval.efficient.train_efficient` with
finetune=False: the encoder frozen, the ResNet classifier trained on the
labelled subset and selected on the validation split) is run once. The
resulting accuracies, one curve per checkpoint against the label fraction,
show how much of the low-data performance comes from CPC training rather
than from the architecture.

Glossary:
  step   a pre-training checkpoint (`ckpt-<step>` in model_dir); step 0 is the
         randomly initialised network (see `random_init_dir`)
  f      a label fraction in (0, 1]
  cell   one (step, f) classifier run, in `cell_dir(output_dir, step, f)`: a
         complete `train_efficient` output directory (config.json,
         subset.json, sweep.csv, point-*/, results.json)

Layout of output_dir:
  random_init/              config.json + ckpt-0: the step-0 encoder (only
                            when model_dir has no ckpt-0 of its own)
  step-<step>/labels-<f>/   one cell
  results.json              every finished cell's rows, protocol "dynamics",
                            each row with its checkpoint_step
  dynamics.csv              the same rows, one line each
  dynamics.md               Top-1 / Top-5 tables (test split), one row per step
  dynamics.png              accuracy against f, one curve per step, lighter =
                            earlier (as arXiv v1 Figure 5)
  .worker-<id>/             multi-worker runs: the other workers' own copies of
                            random_init/ and the tables (the chief's are above)
A cell is finished when its results.json exists; rerunning skips finished
cells and resumes an interrupted one from its own checkpoints.
"""

from __future__ import annotations

import os
import re
from typing import Callable, Sequence

import keras
import tensorflow as tf

from cpc_tf import checkpoints, configs
from cpc_tf.distribute import is_chief, worker_dir
from cpc_tf.eval import report, results, subsets
from cpc_tf.configs import DynamicsConfig, EfficientConfig
from cpc_tf.model import build_model

RANDOM_INIT_DIR = "random_init"
CSV_FILE = "dynamics.csv"
MARKDOWN_FILE = "dynamics.md"
PLOT_FILE = "dynamics.png"
CSV_FIELDS = ("checkpoint_step", "method", "label_fraction", "split", "top1", "top5",
              "num_train_examples")
TITLE = "Learning dynamics (arXiv v1 Figure 5)"

# (encoder model_dir, its step, config of the cell, cell output_dir, subset file or
# None) -> the cell's results dict: phase 1 of `cpc_tf.eval.efficient.train_efficient`
# (launch/learning_dynamics.py), or a stand-in in tests. Passed in, so that this
# module schedules cells and writes tables without building any model itself.
CellFn = Callable[[str, int, EfficientConfig, str, "str | None"], dict]


# ----------------------------------------------------------------------------
# Checkpoints

def available_steps(model_dir: str) -> list[int]:
  """Steps of the ckpt-<step> checkpoints in model_dir, ascending."""
  steps = set()
  for path in tf.io.gfile.glob(os.path.join(model_dir, "ckpt-*.index")):
    match = re.fullmatch(r"ckpt-(\d+)\.index", os.path.basename(path))
    if match:
      steps.add(int(match.group(1)))
  return sorted(steps)


def resolve_steps(model_dir: str, steps: str | Sequence[int]) -> list[int]:
  """The checkpoints to evaluate, ascending and unique; "all" = 0 and every ckpt.

  Step 0 is always available (the random initialisation); other steps must
  have a checkpoint, else ValueError lists the ones that exist.
  """
  if checkpoints.read_config(model_dir) is None:
    raise FileNotFoundError(
        f"{checkpoints.config_path(model_dir)} not found: {model_dir} is not a "
        "pre-training model_dir. Pass the --model_dir of a launch/pretrain.py run.")
  have = available_steps(model_dir)
  if steps == "all":
    return sorted({0, *have})
  missing = sorted({s for s in steps if s and s not in have})
  if missing:
    raise ValueError(
        f"{model_dir} has no checkpoint at step(s) {missing}; it has {have or 'none'} "
        "(plus step 0, the random initialisation). Pre-training keeps only the last "
        "--keep_checkpoints checkpoints: raise it to keep the ones you want to study.")
  return sorted(set(steps))


def random_init_dir(model_dir: str, output_dir: str, seed: int = 0) -> str:
  """A model_dir whose ckpt-0 is the randomly initialised network of model_dir.

  Pre-training writes no checkpoint before its first step, so step 0 is made
  here: the same architecture (model_dir's config.json), built after
  `keras.utils.set_random_seed(seed)` with the layers' own initialisers; a
  draw from the same distribution as the run's initial weights, not the very
  same weights. Written once into output_dir/random_init and reused.
  """
  path = os.path.join(output_dir, RANDOM_INIT_DIR)
  if tf.io.gfile.exists(os.path.join(path, "ckpt-0.index")):
    return path
  config = checkpoints.read_config(model_dir)
  keras.utils.set_random_seed(seed)
  model = build_model(config.model)
  checkpoints.write_config(config, path)
  tf.train.Checkpoint(averaged_model=model).write(
      os.path.join(path, "ckpt-0"))
  return path


def encoder_source(model_dir: str, step: int, output_dir: str, seed: int = 0
                   ) -> tuple[str, int]:
  """(model_dir, step) to load the encoder of `step` from."""
  if step == 0 and 0 not in available_steps(model_dir):
    return random_init_dir(model_dir, output_dir, seed), 0
  return model_dir, step


# ----------------------------------------------------------------------------
# Cells

def _fraction_dirname(fraction: float) -> str:
  """Directory-safe label fraction: 0.01 -> "0.01", 1.0 -> "1"."""
  return f"{fraction:.6g}"


def cell_dir(output_dir: str, step: int, fraction: float) -> str:
  return os.path.join(output_dir, f"step-{step}", f"labels-{_fraction_dirname(fraction)}")


def cell_config(config: EfficientConfig, fraction: float) -> EfficientConfig:
  """Phase 1 only, at label fraction `fraction`."""
  return configs.replace(config, finetune=False, **{"subset.label_fraction": fraction})


def check_fractions(fractions: Sequence[float]) -> list[float]:
  """Ascending unique fractions, each in (0, 1]."""
  if not fractions:
    raise ValueError("No label fractions given; e.g. 0.01,0.1,1.0.")
  for f in fractions:
    subsets.check_fraction(f)
  return sorted(set(float(f) for f in fractions))


def run(model_dir: str, output_dir: str, config: DynamicsConfig,
        strategy: tf.distribute.Strategy | None = None, *, cell_fn: CellFn,
        verbose: bool = True) -> dict:
  """Runs every unfinished (step, fraction) cell of `config`, then writes the outputs.

  All steps of one fraction share the labelled subset and validation split of
  the first cell run at that fraction (its subset.json), so the curves differ
  only by the encoder. Outputs are rewritten after every cell, so an
  interrupted run leaves a consistent table of what has finished. Returns the
  results.json dict.
  """
  strategy = strategy or tf.distribute.get_strategy()
  log = print if verbose and is_chief(strategy) else (lambda line: None)
  # Other workers of a multi-worker run write their step-0 encoder and tables to
  # a scratch directory of their own (as pre-training does), never the chief's.
  own_dir = worker_dir(output_dir, strategy)
  steps = resolve_steps(model_dir, config.steps)
  fractions = check_fractions(config.label_fractions)
  # What results.json records: the steps and fractions actually run.
  config = configs.replace(config, steps=tuple(steps), label_fractions=tuple(fractions))
  for step in steps:
    for fraction in fractions:
      out = cell_dir(output_dir, step, fraction)
      label = f"step {step}, {report.format_fraction(fraction)} labels"
      if tf.io.gfile.exists(os.path.join(out, results.RESULTS_FILE)):
        log(f"{label}: done earlier, skipped")
        continue
      log(f"{label}: training the classifier on the frozen encoder")
      enc_dir, enc_step = encoder_source(model_dir, step, own_dir, config.efficient.seed)
      cell_fn(enc_dir, enc_step, cell_config(config.efficient, fraction), out,
              _shared_subset(output_dir, steps, fraction, out))
      write_outputs(own_dir, model_dir, config, cells_dir=output_dir)
  return write_outputs(own_dir, model_dir, config, cells_dir=output_dir)


def _shared_subset(output_dir: str, steps: Sequence[int], fraction: float,
                   own: str) -> str | None:
  """The subset.json of another cell at `fraction`, if one exists."""
  for step in steps:
    path = os.path.join(cell_dir(output_dir, step, fraction), subsets.SUBSET_FILE)
    if os.path.dirname(path) != own and tf.io.gfile.exists(path):
      return path
  return None


# ----------------------------------------------------------------------------
# Outputs

def collect_rows(output_dir: str, steps: Sequence[int], fractions: Sequence[float]
                 ) -> list[dict]:
  """Rows of every finished cell, each with its checkpoint_step, step-major order."""
  rows = []
  for step in steps:
    for fraction in fractions:
      path = os.path.join(cell_dir(output_dir, step, fraction), results.RESULTS_FILE)
      if tf.io.gfile.exists(path):
        rows += [dict(r, checkpoint_step=step) for r in results.read_results(path)["rows"]]
  return rows


def write_outputs(output_dir: str, model_dir: str, config: DynamicsConfig,
                  cells_dir: str | None = None) -> dict:
  """(Re)writes results.json, dynamics.csv, dynamics.md and dynamics.png.

  Rows come from the cells of config.steps x config.label_fractions (resolved:
  the steps themselves, not "all") under `cells_dir` (default output_dir).
  """
  rows = collect_rows(cells_dir or output_dir, config.steps, config.label_fractions)
  path = os.path.join(output_dir, results.RESULTS_FILE)
  doc = results.write_results(path, "dynamics", config.efficient.subset.data.source,
                              model_dir, rows, configs.to_dict(config))
  results.write_csv(os.path.join(output_dir, CSV_FILE), CSV_FIELDS, rows)
  curves = report.curves_from_results([(path, doc)])
  if curves:
    results.write_text(os.path.join(output_dir, MARKDOWN_FILE),
                       report.markdown_report(curves, TITLE, [(path, doc)]))
    report.plot(curves, os.path.join(output_dir, PLOT_FILE), TITLE, ordered_shades=True)
  return doc
