#!/usr/bin/env bash
# Offline bazel run of the default test suite (README "Bazel"). Idempotent set-up first:
# .venv (scripts/setup_env.sh), then the Debian bazel 4.2.3 and rule packages the WORKSPACE
# points at. Extra arguments replace the target pattern, e.g.
#   bash scripts/bazel_test.sh //tests:test_cpc
#   bash scripts/bazel_test.sh --test_tag_filters=slow //...     (the slow tests)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
cd "$repo"

packages=(bazel-bootstrap bazel-platforms bazel-skylib bazel-rules-cc bazel-rules-java
          bazel-rules-proto)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[bazel] installing Debian packages ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "[bazel] missing Debian packages ${missing[*]}: install them as root" \
         "(apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

# Stale BUILD files would make bazel test less than pytest does: say so before building.
if ! .venv/bin/python scripts/build_files.py --check; then
  echo "[bazel] BUILD files are stale: run .venv/bin/python scripts/build_files.py" >&2
  exit 1
fi

# Output base and caches under .bazel/ (gitignored); the server exits after 5 idle minutes
# rather than lingering on a shared machine.
exec bazel --output_user_root="$repo/.bazel" --max_idle_secs=300 test "${@:-//...}"
