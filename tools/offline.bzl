"""Repositories bazel 4.2.3 asks for, resolved from Debian packages so nothing is downloaded.

bazel's built-in WORKSPACE suffix declares rules_cc, rules_java, platforms, ... as
http_archives wrapped in `maybe`; declaring them here first makes bazel use these instead.
"""

_DEBIAN = "/usr/share/bazel"

def _need(rctx, path, package):
    if not rctx.path(path).exists:
        fail("%s is missing: install the Debian package %s (bash scripts/bazel_test.sh does)." % (path, package))

def _debian_rules_cc_impl(rctx):
    src = _DEBIAN + "/rules/cc"
    _need(rctx, src + "/WORKSPACE", "bazel-rules-cc")
    res = rctx.execute(["cp", "-R", src + "/.", "."])
    if res.return_code:
        fail("copying %s failed: %s" % (src, res.stderr))

    # Debian ships rules_cc 0.0.4, written for bazel >= 5: two rules call use_cpp_toolchain(),
    # which bazel 4.2.3's @bazel_tools lacks. Its value there is the plain toolchain type.
    for f in ["cc/private/rules_impl/compiler_flag.bzl", "cc/private/rules_impl/cc_flags_supplier.bzl"]:
        text = rctx.read(f)
        text = text.replace(', "use_cpp_toolchain")', ")")
        text = text.replace("use_cpp_toolchain()", '["@bazel_tools//tools/cpp:toolchain_type"]')
        rctx.file(f, text)

debian_rules_cc = repository_rule(implementation = _debian_rules_cc_impl)

_NO_COVERAGE = """\
#!/bin/sh
echo "bazel coverage is unavailable offline: its tools (@remote_coverage_tools) are a download" \
     "that no Debian package ships. Use bazel test, or pytest --cov with a network." >&2
exit 1
"""

def _offline_coverage_tools_impl(rctx):
    # Every test rule names these two tools as implicit inputs; only `bazel coverage` runs them.
    rctx.file("unavailable.sh", _NO_COVERAGE, executable = True)
    rctx.file("BUILD", "\n".join([
        'sh_binary(name = "%s", srcs = ["unavailable.sh"], visibility = ["//visibility:public"])' % name
        for name in ["coverage_report_generator", "lcov_merger"]
    ]) + "\n")

offline_coverage_tools = repository_rule(implementation = _offline_coverage_tools_impl)
