"""Console commands of `pip install .`: `cpc-<name>` runs launch/<name>.py.

Each command runs its binary exactly as `python -m launch.<name>` does
(`runpy.run_module` as "__main__", with sys.argv): the module defines its absl
flags, its `app.run(main)` parses the command line, and `--help` shows the
module's docstring and flags. The binaries read no path relative to the current
directory, so the commands work from anywhere.

  cpc-pretrain --preset=tiny --model_dir=runs/tiny --train_steps=50
      # prints what `python -m launch.pretrain ...` prints
setup.cfg's [options.entry_points] lists COMMANDS (a test checks both ways).
"""

from __future__ import annotations

import runpy

# command -> module; one per binary of launch/ (every file with a __main__ guard).
COMMANDS = {
    "cpc-ablation": "launch.ablation",
    "cpc-detection-transfer": "launch.detection_transfer",
    "cpc-efficient-classification": "launch.efficient_classification",
    "cpc-embed": "launch.embed",
    "cpc-export": "launch.export",
    "cpc-extract-features": "launch.extract_features",
    "cpc-learning-dynamics": "launch.learning_dynamics",
    "cpc-linear-eval": "launch.linear_eval",
    "cpc-pretrain": "launch.pretrain",
    "cpc-report": "launch.report",
    "cpc-study": "launch.study",
    "cpc-supervised-baseline": "launch.supervised_baseline",
}


def run(module: str) -> None:
  """Runs `module` as the main program; its app.run exits the process."""
  runpy.run_module(module, run_name="__main__", alter_sys=True)


# The entry points (setup.cfg): cpc-linear-eval = launch.commands:linear_eval, ...
def ablation():
  run("launch.ablation")


def detection_transfer():
  run("launch.detection_transfer")


def efficient_classification():
  run("launch.efficient_classification")


def embed():
  run("launch.embed")


def export():
  run("launch.export")


def extract_features():
  run("launch.extract_features")


def learning_dynamics():
  run("launch.learning_dynamics")


def linear_eval():
  run("launch.linear_eval")


def pretrain():
  run("launch.pretrain")


def report():
  run("launch.report")


def study():
  run("launch.study")


def supervised_baseline():
  run("launch.supervised_baseline")
