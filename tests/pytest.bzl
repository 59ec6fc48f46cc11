"""pytest_test: one bazel test per tests/test_*.py, run through pytest like `pytest tests/FILE`.

The file keeps its pytest idioms (fixtures, tests/conftest.py, setup.cfg markers and timeout):
tests/pytest_main.py is the py_test main and hands the file to pytest.main.

slow (from the @pytest.mark.slow markers; scripts/build_files.py writes it):
  "none"  NAME runs the file (setup.cfg deselects slow tests anyway).
  "some"  NAME runs the default tests, NAME_slow the slow ones.
  "all"   NAME runs the slow tests.
Slow targets carry the tag "slow"; .bazelrc filters them out of `bazel test //...`, and
`bazel test --test_tag_filters=slow //...` runs only them.

reads_source_tree: the test reads the checkout through its resolved __file__ (e.g. it checks
every module); those inputs are invisible to bazel, so the result is never cached ("external").
"""

_RUNNER = "//tests:pytest_main.py"

def pytest_test(name, srcs, deps = [], data = [], slow = "none", reads_source_tree = False, **kwargs):
    if len(srcs) != 1:
        fail("pytest_test %s: srcs must be the one test file, got %s" % (name, srcs))
    if slow not in ("none", "some", "all"):
        fail("pytest_test %s: slow must be none, some or all, got %r" % (name, slow))
    path = "%s/%s" % (native.package_name(), srcs[0])
    tags = ["external"] if reads_source_tree else []
    common = dict(
        main = "pytest_main.py",
        # The main repository's tests/ directory has no __init__.py; pytest's rootdir
        # import mode must see it that way (py_* rules would otherwise add one).
        legacy_create_init = 0,
        **kwargs
    )
    slow_args = [path, "-m", "slow"]
    native.py_test(
        name = name,
        srcs = srcs + [_RUNNER],
        deps = deps + ["//tests:conftest"],
        data = data + ["//:setup.cfg"],
        args = slow_args if slow == "all" else [path],
        tags = tags + (["slow"] if slow == "all" else []),
        # pytest-timeout already stops any one test after 900 s (setup.cfg); the file as a
        # whole gets bazel's longest limit, as a shared 2-core machine slows it severalfold.
        timeout = "eternal",
        **common
    )
    if slow == "some":
        native.py_test(
            name = name + "_slow",
            # The test file and its dependencies come through the default target.
            srcs = [_RUNNER],
            deps = [":" + name],
            args = slow_args,
            tags = tags + ["slow"],
            timeout = "eternal",
            **common
        )
