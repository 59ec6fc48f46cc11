"""Bazel py_test main: runs one test file through pytest, the way `pytest tests/FILE` does.

Usage (from tests/pytest.bzl): pytest_main.py tests/test_x.py [pytest args...]
"""

import os
import sys

import pytest


def main(argv):
  if len(argv) < 2:
    sys.exit("usage: pytest_main.py tests/test_x.py [pytest args]: name the test file")
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  test_file = os.path.join(root, argv[1])
  # setup.cfg carries the markers, timeout and warning filters of the plain pytest run.
  args = [test_file, "-c", os.path.join(root, "setup.cfg"), "--rootdir", root, *argv[2:]]
  xml = os.environ.get("XML_OUTPUT_FILE")
  if xml:
    args += ["--junitxml", xml]
  sys.exit(pytest.main(args))


if __name__ == "__main__":
  main(sys.argv)
