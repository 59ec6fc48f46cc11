"""House rule: flags stop at the edge. Nothing under cpc_tf/ imports absl.flags."""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _imports_absl_flags(path: pathlib.Path) -> bool:
  for node in ast.walk(ast.parse(path.read_text(), str(path))):
    if isinstance(node, ast.Import) and any(a.name.startswith("absl.flags")
                                            for a in node.names):
      return True
    if isinstance(node, ast.ImportFrom):
      if (node.module or "").startswith("absl.flags"):
        return True
      if node.module == "absl" and any(a.name == "flags" for a in node.names):
        return True
  return False


def test_library_never_reads_flags():
  files = sorted((ROOT / "cpc_tf").rglob("*.py"))
  assert files
  offenders = [str(f.relative_to(ROOT)) for f in files if _imports_absl_flags(f)]
  assert not offenders, f"absl.flags imported in the library: {offenders}"


def test_the_checker_catches_an_import(tmp_path):
  bad = tmp_path / "bad.py"
  for line in ("from absl import flags", "import absl.flags", "from absl.flags import X"):
    bad.write_text(line + "\n")
    assert _imports_absl_flags(bad), line
  bad.write_text("from absl import logging\n")
  assert not _imports_absl_flags(bad)
