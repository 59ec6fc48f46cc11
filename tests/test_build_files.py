"""BUILD files vs the code: every .py file in exactly one target, deps equal to its imports.

Written apart from scripts/build_files.py on purpose: the BUILD files are parsed here as
Starlark (Python syntax) and the imports resolved here, so a bug in the generator shows up
as a disagreement instead of being copied into the check.
"""

import ast
import os
import pathlib
import re
import shutil
import subprocess
import sys
import textwrap

# The real checkout, also under bazel (whose runfiles hold only declared files).
ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP = {".venv", ".bazel", ".git", "runs", "build", "__pycache__"}
RULES = {"py_library", "py_binary", "py_test", "pytest_test"}
RUNNER = "tests/pytest_main.py"


def walk(root, name_ok):
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = [d for d in dirnames if d not in SKIP and not d.startswith((".", "bazel-"))]
    for f in filenames:
      if name_ok(f):
        yield pathlib.Path(dirpath, f).relative_to(root).as_posix()


def parse_build(root, build):
  """Targets declared in one BUILD file: {label: dict(kind, files, deps, data, attrs)}."""
  package = os.path.dirname(build)
  tree = ast.parse((root / build).read_text(), build)
  found = {}
  for stmt in tree.body:
    if not (isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call)
            and isinstance(stmt.value.func, ast.Name) and stmt.value.func.id in RULES):
      continue
    attrs = {k.arg: ast.literal_eval(k.value) for k in stmt.value.keywords}
    label = f"//{package}:{attrs['name']}"
    assert label not in found, f"{label} declared twice in {build}"
    found[label] = dict(
        kind=stmt.value.func.id,
        files=[os.path.join(package, s) for s in attrs.get("srcs", [])],
        deps={absolute(d, package) for d in attrs.get("deps", [])},
        data={absolute(d, package) for d in attrs.get("data", [])},
        attrs=attrs)
  return found


def absolute(label, package):
  if label.startswith(":"):
    return f"//{package}{label}"
  if ":" not in label:  # //a/b means //a/b:b
    return f"{label}:{label.rsplit('/', 1)[-1]}"
  return label


def module_of(path):
  parts = path[:-3].split("/")
  if parts[0] == "tests":  # pytest puts tests/ itself on sys.path
    parts = parts[1:]
  if parts[-1] == "__init__":
    parts = parts[:-1]
  return ".".join(parts)


def code_strings(tree):
  """String constants that are not docstrings (scripts, command lines)."""
  docs = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      first = node.body[0] if node.body else None
      if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
        docs.add(id(first.value))
  return [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
          and isinstance(n.value, str) and id(n) not in docs]


def import_trees(tree):
  """The file itself plus the Python scripts it keeps in strings for a subprocess."""
  trees = [tree]
  for s in code_strings(tree):
    if "import" not in s:
      continue
    try:
      trees.append(ast.parse(textwrap.dedent(s)))
    except SyntaxError:  # a str.format template: its import lines still run
      for line in s.splitlines():
        try:
          if line.strip().startswith(("import ", "from ")):
            trees.append(ast.parse(line.strip()))
        except SyntaxError:
          pass
  return trees


def project_imports(path, tree, modules):
  me = module_of(path)
  package = me if path.endswith("__init__.py") else me.rpartition(".")[0]
  out = set()
  for i, t in enumerate(import_trees(tree)):
    for node in ast.walk(t):
      if isinstance(node, ast.Import):
        out |= {a.name for a in node.names if a.name in modules}
      elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level and i == 0:
          up = package.split(".")[:len(package.split(".")) - node.level + 1] if package else []
          base = ".".join(up + [base] if base else up)
        for a in node.names:
          sub = f"{base}.{a.name}"
          out.add(sub if sub in modules else base)
  return {m for m in out if m in modules} - {me}


def slow_kind(tree):
  """A function is wholly slow when a decorator is the mark itself; a mark inside one
  (pytest.param(..., marks=pytest.mark.slow)) makes only some of its cases slow."""
  def marked(node):
    return "slow" in {n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)}
  whole = any(isinstance(s, ast.Assign) and marked(s.value)
              and "pytestmark" in [getattr(t, "id", "") for t in s.targets] for s in tree.body)
  kinds = []
  for f in ast.walk(tree):
    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)) and f.name.startswith("test"):
      if whole or any(getattr(d, "attr", "") == "slow" for d in f.decorator_list):
        kinds.append("all")
      else:
        kinds.append("some" if any(marked(d) for d in f.decorator_list) else "none")
  if not kinds or all(k == "none" for k in kinds):
    return "none"
  return "all" if all(k == "all" for k in kinds) else "some"


def problems(root):
  """Every way the BUILD files disagree with the code under root, one line each."""
  out = []
  targets = {}
  for build in walk(root, lambda f: f == "BUILD"):
    targets.update(parse_build(root, build))
  sources = sorted(walk(root, lambda f: f.endswith(".py")))
  owners = {f: [l for l, t in targets.items() if f in t["files"]] for f in sources}
  for f, labels in owners.items():
    if f == RUNNER:
      if labels:
        out.append(f"{f} belongs to tests/pytest.bzl, not to {labels}")
    elif len(labels) != 1:
      out.append(f"{f} is in {len(labels)} targets {labels}, needs exactly one")
  bzl = root / "tests/pytest.bzl"
  if not bzl.exists() or "pytest_main.py" not in bzl.read_text():
    out.append("tests/pytest.bzl does not run tests/pytest_main.py")
  for label, t in targets.items():
    for f in t["files"]:
      if f not in owners:
        out.append(f"{label} names {f}, which does not exist")
  for f in (f for f in sources if f.startswith("tests/")):
    # tests/ is on sys.path under pytest and bazel alike; the `tests` package is not.
    for node in ast.walk(ast.parse((root / f).read_text(), f)):
      names = ([a.name for a in node.names] if isinstance(node, ast.Import)
               else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
      if any(n == "tests" or n.startswith("tests.") for n in names):
        out.append(f"{f}: imports from `tests.`, which bazel's runfiles lack; "
                   "import the module by its own name (`from tolerances import ...`)")
  modules = {module_of(f): f for f in sources if f != RUNNER}
  label_of = {f: labels[0] for f, labels in owners.items() if len(labels) == 1}
  for label, t in sorted(targets.items()):
    want_deps, want_data = set(), set()
    for f in (f for f in t["files"] if f in owners and f != RUNNER):
      tree = ast.parse((root / f).read_text(), f)
      want_deps |= {label_of[modules[m]] for m in project_imports(f, tree, modules)
                    if modules[m] in label_of}
      if t["kind"] == "pytest_test":
        named = {m for s in code_strings(tree)
                 for m in re.findall(r"(?<![\w.])[A-Za-z_]\w*(?:\.\w+)+", s)}
        binaries = {label_of[modules[m]] for m in named
                    if m in modules and modules[m] in label_of}
        want_data |= {b for b in binaries if targets[b]["kind"] == "py_binary"}
        got, want = t["attrs"].get("slow", "none"), slow_kind(tree)
        if want != got:
          out.append(f"{label}: slow = {got!r}, but the file's slow tests make it {want!r}")
        reads = bool(re.search(r"realpath\(__file__\)|Path\(__file__\)\.resolve\(\)",
                               (root / f).read_text()))
        if reads != t["attrs"].get("reads_source_tree", False):
          out.append(f"{label}: reads_source_tree should be {reads}")
    want_deps.discard(label)
    for kind, want, got in (("deps", want_deps, t["deps"]), ("data", want_data, t["data"])):
      if want - got:
        out.append(f"{label}: {kind} misses {sorted(want - got)}")
      if got - want:
        out.append(f"{label}: {kind} has extra {sorted(got - want)}")
  out += cycles({label: t["deps"] | t["data"] for label, t in targets.items()})
  return out


def cycles(graph):
  """Bazel refuses a dependency cycle even where Python would cope with it."""
  done, on_path = set(), []

  def visit(node):
    if node in on_path:
      return [" -> ".join(on_path[on_path.index(node):] + [node])]
    if node in done:
      return []
    on_path.append(node)
    found = [c for nxt in sorted(graph.get(node, ())) for c in visit(nxt)]
    on_path.pop()
    done.add(node)
    return found

  return [f"dependency cycle {c}" for node in sorted(graph) for c in visit(node)][:1]


FIX = "\nrun `python scripts/build_files.py` to rewrite the BUILD files"


def test_build_files_match_the_code():
  assert (ROOT / "BUILD").exists() and (ROOT / "WORKSPACE").exists()
  found = problems(ROOT)
  assert not found, "\n".join(found) + FIX


def test_generator_output_is_current():
  proc = subprocess.run([sys.executable, str(ROOT / "scripts/build_files.py"), "--check"],
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stdout + proc.stderr


def test_every_kind_of_file_has_a_target():
  targets = {}
  for build in walk(ROOT, lambda f: f == "BUILD"):
    targets.update(parse_build(ROOT, build))
  kinds = {t["kind"] for t in targets.values()}
  assert {"py_library", "py_binary", "pytest_test"} <= kinds
  assert targets["//launch:pretrain"]["kind"] == "py_binary"
  assert targets["//tests:test_cpc"]["kind"] == "pytest_test"
  assert "//cpc_tf:cpc" in targets["//tests:test_cpc"]["deps"]


def copy_tree(tmp_path):
  dest = tmp_path / "repo"
  shutil.copytree(ROOT, dest, ignore=lambda d, names: [
      n for n in names if n in SKIP or n.startswith((".", "bazel-"))])
  assert problems(dest) == []
  return dest


def test_a_new_module_without_target_fails(tmp_path):
  repo = copy_tree(tmp_path)
  # Import lines are built with format(): written out, they would count as this file's imports.
  (repo / "cpc_tf/brand_new.py").write_text("from cpc_tf import {}\n".format("configs"))
  (repo / "launch/brand_new_binary.py").write_text("if __name__ == '__main__':\n  pass\n")
  (repo / "tests/test_brand_new.py").write_text("def test_x():\n  assert True\n")
  found = problems(repo)
  for f in ("cpc_tf/brand_new.py", "launch/brand_new_binary.py", "tests/test_brand_new.py"):
    assert f"{f} is in 0 targets" in "\n".join(found), found


def test_a_missing_or_extra_dep_fails(tmp_path):
  repo = copy_tree(tmp_path)
  patches = repo / "cpc_tf/patches.py"
  # A lazy import counts as much as a top-level one.
  patches.write_text(patches.read_text() +
                     "\n\ndef _late():\n  from cpc_tf import {}\n".format("context"))
  build = repo / "cpc_tf/BUILD"
  text = build.read_text()
  build.write_text(text.replace('    srcs = ["averaging.py"],\n',
                                '    srcs = ["averaging.py"],\n    deps = [":resnet"],\n'))
  found = problems(repo)
  assert "//cpc_tf:patches: deps misses ['//cpc_tf:context']" in found, found
  assert "//cpc_tf:averaging: deps has extra ['//cpc_tf:resnet']" in found, found


def test_an_import_through_the_tests_package_fails(tmp_path):
  repo = copy_tree(tmp_path)
  test = repo / "tests/test_padding.py"
  test.write_text(test.read_text() + "\nfrom tests.{} import F32_EPS\n".format("tolerances"))
  found = "\n".join(problems(repo))
  assert "tests/test_padding.py: imports from `tests.`" in found, found


def test_an_import_cycle_fails(tmp_path):
  repo = copy_tree(tmp_path)
  schema = repo / "cpc_tf/configs/schema.py"
  late = "\n\ndef _late():\n  from cpc_tf import {}\n".format("patches")
  schema.write_text(schema.read_text() + late)
  build = repo / "cpc_tf/configs/BUILD"
  # schema depends on nothing: give it //cpc_tf:patches, which reads the configs.
  deps = '    srcs = ["schema.py"],\n'
  assert deps in build.read_text()
  build.write_text(build.read_text().replace(deps, deps + '    deps = ["//cpc_tf:patches"],\n'))
  found = problems(repo)
  assert any(p.startswith("dependency cycle") and "//cpc_tf/configs:schema" in p
             and "//cpc_tf:patches" in p for p in found), found


def test_a_file_in_two_targets_or_a_wrong_slow_tag_fails(tmp_path):
  repo = copy_tree(tmp_path)
  build = repo / "tests/BUILD"
  text = build.read_text()
  text = text.replace('    srcs = ["test_metrics.py"],',
                      '    srcs = ["test_metrics.py", "test_configs.py"],')
  # Drop the first slow tag: that target's file has slow tests, so the tag is wrong.
  tag = '    slow = "some",\n'
  start = text.index(tag)
  name = re.findall(r'name = "([^"]+)"', text[:start])[-1]
  text = text[:start] + text[start + len(tag):]
  build.write_text(text)
  found = "\n".join(problems(repo))
  assert "tests/test_configs.py is in 2 targets" in found, found
  assert f"//tests:{name}: slow = 'none', but the file's slow tests make it 'some'" in found, found
  assert "//tests:test_metrics: deps misses ['//cpc_tf/configs:configs']" in found


def test_a_slow_case_of_a_parametrized_test_makes_the_file_some_not_all():
  mark_inside = textwrap.dedent("""
      @pytest.mark.parametrize("x", [1, pytest.param(2, marks=pytest.mark.slow)])
      def test_a(x):
        pass
      """)
  whole = textwrap.dedent("""
      @pytest.mark.slow
      def test_a():
        pass
      """)
  assert slow_kind(ast.parse(mark_inside)) == "some"
  assert slow_kind(ast.parse(whole)) == "all"
  assert slow_kind(ast.parse("def test_a():\n  pass\n")) == "none"
