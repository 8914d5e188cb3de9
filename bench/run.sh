#!/usr/bin/env bash
# run.sh: `make bench`. Installs the tools (install.sh), builds the harness
# and runs it pinned to the load CPU; the systems under test are pinned to
# the proxy CPU by the harness itself. Environment knobs:
#   BENCH_DURATION  length of each load per system (default 10s; `make bench-quick` uses 2s)
#   BENCH_SYSTEMS   e.g. none,causeway-1hop,causeway-2hop,causeway-mtls,causeway-gateway,haproxy,nginx
#   BENCH_LOADS     e.g. h1-max,h1-fixed,h2,grpc,tcp
#   BENCH_ROUNDS    rounds over all systems, median reported (default 1; 3 on a noisy machine)
#   BENCH_NICE      e.g. -10: run everything (harness, tools, upstream, systems: all
#                   inherit it) at that niceness, so on a machine shared with other
#                   work the systems under test keep more of their core. Off by default.
#   BENCH_ARGS      any other benchreport flags (see: go run ./bench/cmd/benchreport -h)
set -euo pipefail
cd "$(dirname "$0")/.."

./bench/install.sh

if [ "$(nproc)" -lt 2 ]; then
	echo "bench: fewer than 2 CPUs; running unpinned (figures are not comparable with pinned runs)" >&2
	PROXY_CPU="" LOAD_CPU=""
else
	PROXY_CPU=${BENCH_PROXY_CPU:-1} LOAD_CPU=${BENCH_LOAD_CPU:-0}
fi

mkdir -p bin
go build -o bin/benchreport ./bench/cmd/benchreport

args=(--duration "${BENCH_DURATION:-10s}" --proxy-cpu "$PROXY_CPU" --load-cpu "$LOAD_CPU" --causeway bin/causeway-proxy --causeway-cli bin/causeway)
[ -n "${BENCH_SYSTEMS:-}" ] && args+=(--systems "$BENCH_SYSTEMS")
[ -n "${BENCH_LOADS:-}" ] && args+=(--loads "$BENCH_LOADS")
[ -n "${BENCH_ROUNDS:-}" ] && args+=(--rounds "$BENCH_ROUNDS")
# shellcheck disable=SC2206 # BENCH_ARGS is a list of flags on purpose
[ -n "${BENCH_ARGS:-}" ] && args+=(${BENCH_ARGS})

prefix=()
[ -n "${BENCH_NICE:-}" ] && prefix+=(nice -n "$BENCH_NICE")
[ -n "$LOAD_CPU" ] && prefix+=(taskset -c "$LOAD_CPU")
exec "${prefix[@]}" bin/benchreport "${args[@]}"
