#!/usr/bin/env bash
# The GPU check, in two halves for a machine with an NVIDIA GPU but no Node
# and no Rust toolchain (the `device` machine; ../shared/notes/gpu.md):
#
#   bash scripts/gpu-check.sh prepare   # here: builds everything into .gpu-check/
#   bash scripts/gpu-check.sh run [scaling]   # there, from the repository root
#
# `prepare` builds the release addon, the Rust test binaries of gama-core
# (stripped), the GPU and memory tests compiled to JavaScript, and an xz-compressed copy
# of this machine's Node binary (kept between runs). Carry `.gpu-check` and
# `gama-native.linux-x64-gnu.node` with the working tree (about 45 MB).
#
# `run` unpacks Node, runs the GPU tests of the core (kernels against the
# CPU path, the librosa fixtures), the JS GPU and memory tests (GPU blocks
# included) and `npm run bench -- gpu`; with `scaling` also the scaling bench (issue 13's 16-core table).
# Logs and the benchmark results go to $OUT (or .gpu-check/out). About 3 to
# 5 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=.gpu-check

prepare() {
  mkdir -p "$dir/node_modules"
  npm run build >/dev/null
  cargo test --release -p gama-core --no-run --message-format=json 2>/dev/null |
    node -e '
      const lines = require("fs").readFileSync(0, "utf8").trim().split("\n").map((l) => JSON.parse(l));
      for (const m of lines) if (m.reason === "compiler-artifact" && m.executable && m.target.name !== "build-script-build")
        console.log(`${m.target.kind.includes("lib") ? "core" : m.target.name}\t${m.executable}`);
    ' | while IFS=$'\t' read -r name exe; do
      case "$name" in core | librosa) cp "$exe" "$dir/$name-tests" && strip "$dir/$name-tests" ;; esac
    done
  # The fixtures are read from the path the tests were compiled at.
  echo "$root" > "$dir/built-at"
  for name in gpu memory; do
    node_modules/.bin/esbuild "__test__/$name.test.ts" --outfile="$dir/$name.test.js" --format=cjs --platform=node --log-level=warning
  done
  cp -r __test__/fixtures "$dir/"
  cp -r node_modules/p-queue "$dir/node_modules/"
  if [ ! -s "$dir/node.xz" ]; then xz -9e -T0 -c "$(command -v node)" > "$dir/node.xz"; fi
  du -sh "$dir" gama-native.linux-x64-gnu.node
}

run() {
  local out=${OUT:-$dir/out}
  mkdir -p "$out" /tmp/gama-node
  xz -dc "$dir/node.xz" > /tmp/gama-node/node
  chmod +x /tmp/gama-node/node
  export PATH=/tmp/gama-node:$PATH
  export LD_LIBRARY_PATH=/usr/local/cuda/targets/x86_64-linux/lib:/usr/local/cuda/lib64:${LD_LIBRARY_PATH:-}
  local built_at
  built_at=$(cat "$dir/built-at")
  if [ "$built_at" != "$root" ] && [ ! -e "$built_at" ]; then
    mkdir -p "$(dirname "$built_at")" && ln -s "$root" "$built_at"
  fi
  mkdir -p node_modules && cp -r "$dir/node_modules/." node_modules/
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/device.txt" || true
  local status=0
  "$dir/core-tests" --test-threads=1 --nocapture gpu memory 2>&1 | tee "$out/core-tests.log" || status=1
  "$dir/librosa-tests" --nocapture 2>&1 | tee "$out/librosa-tests.log" || status=1
  # The JS test file's fixtures path is relative to its own folder.
  GAMA_TEST_GPU=1 node --expose-gc --test "$dir/gpu.test.js" "$dir/memory.test.js" 2>&1 | tee "$out/gpu-test.log" || status=1
  node benchmark/run.js gpu 2>&1 | tee "$out/bench-gpu.log" || status=1
  if [ "${1:-}" = scaling ]; then
    node benchmark/run.js scaling 2>&1 | tee "$out/bench-scaling.log" || status=1
  fi
  cp benchmark/results/latest.json benchmark/results/report.md "$out/" 2>/dev/null || true
  return $status
}

case "${1:-}" in
  prepare) prepare ;;
  run) shift; run "$@" ;;
  *) echo "usage: bash scripts/gpu-check.sh prepare | run [scaling]" >&2; exit 2 ;;
esac
