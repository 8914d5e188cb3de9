#!/usr/bin/env bash
# The project's test command (`make test`, called by .ci/run): makes sure the real
# components the tests run against are there (built or installed by the project's own
# scripts and cached under ~/.cache/causeway), then runs vet, gofmt, the whole suite under
# -race, and a short pass of every fuzz target. Prints a timestamped line per step.
#
# Env: FUZZTIME (default 10s per target), CAUSEWAY_SKIP_TOOLS=1 to use whatever is already
# built (tests needing a missing tool then skip and say so), GO_TEST_FLAGS extra flags.
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$SECONDS
step() { echo "== test: $(date -u +%H:%M:%S) (+$((SECONDS-t0))s) $*"; }

if [ -z "${CAUSEWAY_SKIP_TOOLS:-}" ]; then
  step "SPIRE server + agent (scripts/spire.sh; built once, then cached)"
  CAUSEWAY_SPIRE_BIN=$(scripts/spire.sh | tail -n1)
  step "kube-apiserver + etcd (scripts/kube-apiserver.sh; built once, then cached)"
  kube_bin=$(scripts/kube-apiserver.sh | tail -n1)
  step "protoc + pinned plugins (scripts/protoc.sh, into a scratch dir)"
  scratch=$(mktemp -d)
  trap 'rm -rf "$scratch"' EXIT
  scripts/protoc.sh "$scratch" >/dev/null
  export CAUSEWAY_SPIRE_BIN KUBE_APISERVER_BIN="$kube_bin/kube-apiserver" ETCD_BIN="$kube_bin/etcd"
  # With the tools in place, a test that cannot find one fails instead of skipping.
  export CAUSEWAY_REQUIRE_SPIRE=1 CAUSEWAY_REQUIRE_KUBE=1
  # Tests that build network namespaces (pods with real addresses) need root
  # and iproute2; CI runs as root, so there they must run, not skip.
  if [ "$(id -u)" = 0 ]; then
    step "iproute2 + iptables for network-namespace tests (scripts/netns-tools.sh)"
    scripts/netns-tools.sh
    export CAUSEWAY_REQUIRE_NETNS=1
  fi
fi

step "go vet"
go vet ./...
step "gofmt"
bad=$(gofmt -l $(git ls-files '*.go' | grep -v '\.pb\.go$') 2>&1 || true)
if [ -n "$bad" ]; then echo "gofmt needed:"; echo "$bad"; exit 1; fi

step "go test -race ./... (packages report as they finish)"
# shellcheck disable=SC2086
go test -race -count=1 -timeout 25m ${GO_TEST_FLAGS:-} ./...

step "fuzz every target for ${FUZZTIME:-10s}"
scripts/fuzz.sh "${FUZZTIME:-10s}"
step "all passed"
