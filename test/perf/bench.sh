#!/usr/bin/env bash
# make bench: every benchmark, its output kept in a log, and at the end one
# table of each measure against its target (test/perf/benchtable): met or
# missed, misses stated. The log stays in $BENCH_LOG (default
# .run/bench.log) for reading the figures the table does not show.
#
# Environment: GO (go), BENCH (the -bench pattern of the first step),
# MAKE (make, for make bench-dns).
set -euo pipefail
GO=${GO:-go}
BENCH=${BENCH:-.}
MAKE=${MAKE:-make}
LOG=${BENCH_LOG:-.run/bench.log}
mkdir -p "$(dirname "$LOG")"
: > "$LOG"

step() {
  echo "== $*" | tee -a "$LOG"
  "$@" 2>&1 | tee -a "$LOG"
}

step "$MAKE" --no-print-directory bench-dns
step "$GO" test -run '^$' -bench "$BENCH" -benchmem ./internal/... ./kds/... ./dns/...
step "$GO" test -run '^$' -bench 'Generate|MeshUpdate|EndpointEncoding' -benchmem ./zone/xds
step "$GO" test -run '^$' -bench 'PushTo1000' -benchtime 20x ./zone/xds
step "$GO" test -run '^$' -bench 'Propagation|ProxyConvergence' -benchtime 200x ./test/perf
step "$GO" test -run '^$' -bench 'ZoneWith10k' -benchtime 3x ./test/perf
step "$GO" test -run '^$' -bench 'Global50k' -benchtime 100x ./test/perf
step "$GO" test -run '^$' -bench 'NewServiceCost' -benchtime 20x ./test/perf
step "$GO" test -run '^$' -bench 'Kubernetes2000Pods' -benchtime 2x -timeout 15m ./test/perf

echo
echo "== every measure against its target (the whole output: $LOG)"
"$GO" run ./test/perf/benchtable < "$LOG"
