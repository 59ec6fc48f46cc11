"""`pip install .` gives one working console command per binary, from any directory."""

import ast
import configparser
import os
import pathlib
import shutil
import subprocess
import sys
import sysconfig

import numpy as np
import pytest
from PIL import Image

from launch import commands

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHIPPED = ("cpc_tf", "launch", "flags")  # the packages setup.cfg installs


def console_scripts():
  config = configparser.ConfigParser()
  config.read(ROOT / "setup.cfg")
  lines = config["options.entry_points"]["console_scripts"].strip().splitlines()
  return dict(tuple(part.strip() for part in line.split("=")) for line in lines)


def binaries():
  """launch/ modules with a __main__ guard: the binaries."""
  return sorted(f"launch.{p.stem}" for p in (ROOT / "launch").glob("*.py")
                if 'if __name__ == "__main__":' in p.read_text())


def test_every_binary_has_one_command_and_every_command_a_binary():
  scripts = console_scripts()
  assert sorted(commands.COMMANDS.values()) == binaries()
  assert set(scripts) == set(commands.COMMANDS)
  for name, target in scripts.items():
    module, function = target.split(":")
    assert module == "launch.commands", name
    assert name == "cpc-" + function.replace("_", "-")
    assert commands.COMMANDS[name] == f"launch.{function}"
    assert callable(getattr(commands, function)), target


def test_shipped_code_imports_only_declared_or_standard_packages():
  """A package imported by shipped code but missing from install_requires would
  work here (the dev .venv has it) and fail after `pip install .` elsewhere."""
  config = configparser.ConfigParser()
  config.read(ROOT / "setup.cfg")
  declared = {line.split("==")[0].split(">")[0].strip().lower().replace("_", "-")
              for line in config["options"]["install_requires"].splitlines()
              if line.strip() and not line.strip().startswith("#")}
  import importlib.metadata  # pylint: disable=import-outside-toplevel
  distributions = importlib.metadata.packages_distributions()
  optional = {"umap"}  # tried in a try/except, falls back (cpc_tf/eval/embedding_map.py)
  # Arrive with tensorflow-cpu (its own install_requires); pinned through it.
  through_tensorflow = {"numpy", "google", "tree", "h5py"}
  missing = {}
  for package in SHIPPED:
    for path in (ROOT / package).rglob("*.py"):
      for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                 [node.module] if isinstance(node, ast.ImportFrom) and node.module
                 and not node.level else [])
        for name in names:
          top = name.split(".")[0]
          if (top in sys.stdlib_module_names or top in SHIPPED or top in optional
              or top in through_tensorflow):
            continue
          dists = {d.lower().replace("_", "-") for d in distributions.get(top, [top])}
          if top == "tensorflow":
            dists.add("tensorflow-cpu")
          if not dists & declared:
            missing.setdefault(top, str(path.relative_to(ROOT)))
  assert not missing, f"imported but not in setup.cfg install_requires: {missing}"


def venv_with_the_dev_packages(path):
  """A new venv whose own site-packages comes first, then this interpreter's.

  `venv --system-site-packages` made from a venv sees the base interpreter's
  packages, not this venv's (TensorFlow), so a .pth line appends this venv's
  site-packages instead; the package under test is installed into the new one.
  """
  subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True,
                 timeout=120)
  python = path / "bin" / "python"
  site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                         "['purelib'])"], check=True, capture_output=True, text=True
                        ).stdout.strip()
  pathlib.Path(site, "dev_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
  return python


def copy_source(target):
  """What `pip install .` needs, without touching the checkout (no build/ or egg-info)."""
  for name in ("setup.cfg", "pyproject.toml", "README.md"):
    shutil.copy(ROOT / name, target / name)
  for package in SHIPPED:
    shutil.copytree(ROOT / package, target / package,
                    ignore=shutil.ignore_patterns("__pycache__", "BUILD"))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
  """(bin dir, python, environment) of a fresh venv holding `pip install .` of a copy."""
  tmp_path = tmp_path_factory.mktemp("install")
  source = tmp_path / "source"
  source.mkdir()
  copy_source(source)
  python = venv_with_the_dev_packages(tmp_path / "venv")
  env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
  env["TF_CPP_MIN_LOG_LEVEL"] = "2"
  proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                         "--no-deps", "--no-build-isolation", "--no-index", str(source)],
                        env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
  return tmp_path / "venv" / "bin", python, env


def test_pip_install_gives_commands_that_run_outside_the_checkout(installed, tmp_path):
  bin_dir, python, env = installed
  elsewhere = tmp_path / "elsewhere"
  elsewhere.mkdir()
  for name in commands.COMMANDS:
    assert (bin_dir / name).is_file(), name

  def run(*args):
    return subprocess.run([str(a) for a in args], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=600)

  where = run(python, "-c", "import cpc_tf, launch, flags; "
              "print(cpc_tf.__file__, launch.__file__, flags.__file__)")
  assert where.returncode == 0, where.stderr[-2000:]
  assert all(str(bin_dir.parent) in f for f in where.stdout.split()), where.stdout

  helped = run(bin_dir / "cpc-embed", "--help")
  assert helped.returncode == 1, helped.stderr[-2000:]  # absl's --help exits 1, as with -m
  assert "Embeds every image of a folder or split" in helped.stdout  # the docstring
  assert "--output_dir" in helped.stdout and "--map" in helped.stdout  # its own flags

  model_dir = elsewhere / "runs" / "tiny"
  trained = run(bin_dir / "cpc-pretrain", "--preset=tiny", "--model_dir=runs/tiny",
                "--train_steps=2", "--checkpoint_every=2")
  assert trained.returncode == 0, trained.stderr[-3000:]
  assert (model_dir / "config.json").is_file()

  images = elsewhere / "images"
  images.mkdir()
  for i in range(3):
    Image.fromarray(np.full((16, 16, 3), 60 * i, np.uint8)).save(images / f"{i}.png")
  embedded = run(bin_dir / "cpc-embed", "--model_dir=runs/tiny", "--dataset=images",
                 "--output_dir=embeddings")
  assert embedded.returncode == 0, embedded.stderr[-3000:]
  assert "Wrote 3 embeddings of dimension" in embedded.stdout
  assert (elsewhere / "embeddings" / "embeddings.npz").is_file()

  refused = run(bin_dir / "cpc-export", "--model_dir=nothing", "--export_dir=export")
  assert refused.returncode == 1
  assert refused.stderr.strip().splitlines()[-1].startswith("Error: --model_dir=nothing")


@pytest.mark.slow
def test_every_command_shows_its_help_outside_the_checkout(installed, tmp_path):
  bin_dir, _, env = installed
  names = sorted(commands.COMMANDS)
  for pair in (names[i:i + 2] for i in range(0, len(names), 2)):  # 2 cores
    procs = {name: subprocess.Popen([str(bin_dir / name), "--help"], cwd=tmp_path, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    text=True) for name in pair}
    for name, proc in procs.items():
      out, err = proc.communicate(timeout=600)
      module = commands.COMMANDS[name]
      first_line = ast.get_docstring(ast.parse(
          (ROOT / (module.replace(".", "/") + ".py")).read_text())).splitlines()[0]
      assert proc.returncode == 1 and "Traceback" not in err, (name, err[-2000:])
      assert first_line in out, (name, out[:500])
      assert f"site-packages/{module.replace('.', '/')}.py:" in out, name  # its flags
