#!/usr/bin/env bash
# Load benchmark: Cloakroom's whole security chain against a bare
# httputil.ReverseProxy that adds a bearer as long as Cloakroom's, each
# target a separate process on 127.0.0.1, in several scenarios (small, small-20fe,
# small-256, slow-256, large, post, sse, composite-1, composite-4, login),
# measured in one run. See BENCHMARKS.md.
#
#   bash bench/load.sh                       # full run: 3 rounds, 1s warm-up + 5s per scenario and target (about 12 min on 2 CPUs)
#   bash bench/load.sh --quick               # smoke run: small and sse, 1 round, 8 workers, 1s + 3s
#   bash bench/load.sh --quick --scenarios login,composite-1,composite-4
#   bash bench/load.sh -h                    # every flag of bench/loadgen
#
# Needs only Go; the cloakroom-redis target also needs redis-server on PATH
# (it is skipped otherwise). Results: stdout, bench/results/latest.{md,json}.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
GO=${GO:-go}
command -v "$GO" >/dev/null 2>&1 || { echo "load.sh: go not found" >&2; exit 1; }

bin=$(mktemp -d "${TMPDIR:-/tmp}/cloakroom-load-bin.XXXXXX")
trap 'rm -rf "$bin"' EXIT

echo "load.sh: building cloakroom and loadgen into $bin" >&2
"$GO" build -o "$bin/cloakroom" ./cmd/cloakroom
"$GO" build -o "$bin/loadgen" ./bench/loadgen

rev=$(git describe --always --dirty 2>/dev/null || echo unknown)
"$bin/loadgen" --cloakroom "$bin/cloakroom" --out bench/results --revision "$rev" "$@"
