"""A Python toolchain whose interpreter is the project's .venv (TensorFlow, TFDS, absl, pytest...).

The venv path is machine-specific, so a repository rule computes it from the workspace
location instead of writing it into a checked-in file.
"""

_BUILD = """\
load("@bazel_tools//tools/python:toolchain.bzl", "py_runtime_pair")

py_runtime(
    name = "python3",
    interpreter_path = "{python}",
    python_version = "PY3",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":python3",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
"""

def _venv_python_impl(rctx):
    # Not realpath: the interpreter must be started through .venv/bin so it finds pyvenv.cfg.
    root = rctx.path(Label("//:WORKSPACE")).dirname
    python = "%s/.venv/bin/python" % root
    if not rctx.path(python).exists:
        fail("%s is missing: run `bash scripts/setup_env.sh` first (it creates .venv)." % python)
    rctx.file("BUILD", _BUILD.format(python = python))

venv_python = repository_rule(
    implementation = _venv_python_impl,
    local = True,
)
