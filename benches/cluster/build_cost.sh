#!/usr/bin/env bash
# What the etcd client ([cluster], issue 13) adds to a build: CPU seconds
# (user + sys, which load does not inflate the way it does wall time) of a
# from-scratch debug build of every test target (what CI builds) and of a
# release build, and the release binary's size, for two commits:
#
#   benches/cluster/build_cost.sh [BASE [NEW]]
#
# BASE defaults to the commit before etcd-client came in, NEW to HEAD. Each
# commit is exported (git archive) and built in its own target directory
# under target/build-cost, so nothing is shared and the worktree's target/
# is not touched. Needs a quiet machine for the wall times only; takes two
# full builds of each kind.
set -euo pipefail
cd "$(dirname "$0")/../.."
new=${2:-HEAD}
base=${1:-$(git log --format=%H -n 1 --grep='^Cluster store on etcd' "$new")^}
out=target/build-cost
rm -rf "$out"
mkdir -p "$out"
for which in base new; do
  rev=$([ "$which" = base ] && echo "$base" || echo "$new")
  src="$out/$which-src"
  mkdir -p "$src"
  git archive "$rev" | tar -x -C "$src"
  export CARGO_TARGET_DIR="$PWD/$out/$which-target"
  (
    cd "$src"
    /usr/bin/time -f "$which debug-tests cpu_s=%U+%S wall_s=%e" cargo build --tests --quiet 2>&1 | tail -n 1
    /usr/bin/time -f "$which release cpu_s=%U+%S wall_s=%e" cargo build --release --bin switchyard --quiet 2>&1 | tail -n 1
  ) | tee -a "$out/results.txt"
  echo "$which binary_bytes=$(stat -c %s "$CARGO_TARGET_DIR/release/switchyard")" | tee -a "$out/results.txt"
done
echo "== $out/results.txt"
cat "$out/results.txt"
