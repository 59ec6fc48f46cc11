r"""Collects result files into the paper's Table 5 / Table 2, Figure 1 and Table 3.

Command:
  python -m launch.report --results='runs/*/results.json' \
    --results=runs/supervised --output_dir=runs/report --paper

--results takes paths, globs (quote them) or output directories (their
results.json) and may be repeated. Prints the report: a Top-1 and a Top-5
Markdown table (rows: methods; columns: label fractions; accuracies in
percent), then the files each row came from. Writes report.md (the same text)
and report.png (accuracy against label fraction, log axis, supervised red, CPC
blue) into --output_dir, and prints their paths.

Only rows of --split (default test) are reported. --rename='OLD=NEW' renames a
method in every file, --rename='OLD=NEW@runs/b' only in the files under
runs/b (two runs reporting the same method name must be told apart), and
--aggregate averages them instead (repeats, e.g. subsets drawn with several
seeds: "mean ± std (n=N)", error bars in the plot). --paper adds the
published ImageNet numbers of ICLR Table 5 as dashed rows labelled
"(paper)"; they are quoted, not measured here. Results of
launch/detection_transfer.py (protocol "detection") become a Table-3-like
section (mAP per method, then AP per class; --paper adds Table 3's 74.7 / 70.6
/ 72.7); report.png is written only when there are classification rows.

Exits with status 1 and a message naming the file for missing files,
malformed JSON or a file outside the results schema.
"""

from __future__ import annotations

import os

from absl import app
from absl import flags

from cpc_tf import records
from cpc_tf.eval import report
from launch import entry

flags.DEFINE_multi_string(
    "results", None, "A results.json path, a glob (quoted) or an output directory; "
    "repeat the flag for more.")
flags.DEFINE_string("output_dir", None, "Where report.md and report.png are written.")
flags.DEFINE_bool("paper", False, "Add the paper's published numbers (ICLR Table 5) as "
                  "reference rows labelled (paper).")
flags.DEFINE_string("title", "Efficient classification", "Title of the report and plot.")
flags.DEFINE_enum("split", "test", ("test", "validation"),
                  "Which rows to report: the final test accuracy, or the validation "
                  "accuracy of the selected model.")
flags.DEFINE_multi_string(
    "rename", [], "Rename a method in the report: 'OLD=NEW' in every file, or "
    "'OLD=NEW@PATH' only in the files at or under PATH (e.g. two runs that both report "
    "'CPC v2 (frozen)'); repeat the flag for more.")
flags.DEFINE_bool("aggregate", False, "Average rows with the same method and label "
                  "fraction (repeats over subset seeds) into mean ± sample std.")
flags.mark_flags_as_required(["results", "output_dir"])
FLAGS = flags.FLAGS


def build_config() -> str:
  """The output directory, once it may be written."""
  records.check_writable(FLAGS.output_dir, "--output_dir")
  return FLAGS.output_dir


def run(output_dir: str) -> None:
  text = report.write_report(FLAGS.results, output_dir, paper=FLAGS.paper,
                             title=FLAGS.title, split=FLAGS.split,
                             renames=FLAGS.rename, aggregate=FLAGS.aggregate)
  print(text)
  for name in ("report.md", "report.png"):
    path = os.path.join(output_dir, name)
    if os.path.exists(path) or "://" in path:  # no plot for detection-only reports
      print(f"Wrote {path}")


main = entry.main(build_config, run, usage_hint="; pass files with --results.")


if __name__ == "__main__":
  app.run(main)
