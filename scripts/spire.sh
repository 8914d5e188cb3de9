#!/usr/bin/env bash
# Builds spire-server and spire-agent from source at a pinned release into a cache directory
# and prints that directory's path on the last line of stdout. Reuses the binaries if both are
# already there, so CI can cache the directory between runs.
#
# Usage: scripts/spire.sh            (build or reuse; prints the bin directory)
# Cost: about 7 min on 2 idle cores; 26.5 min measured with 2 cores shared by six
# busy agents (go get 2m44s, spire-server 23m, spire-agent 49s).
# Env:   SPIRE_VERSION   default v1.13.3 (v1.15.x needs a plugin SDK the module proxy refuses)
#        SPIRE_CACHE     default ${XDG_CACHE_HOME:-$HOME/.cache}/causeway/spire-$SPIRE_VERSION
#
# The interop tests find the binaries with CAUSEWAY_SPIRE_BIN=<printed dir>, or in the default
# cache directory when that variable is unset.
set -euo pipefail

version=${SPIRE_VERSION:-v1.13.3}
cache=${SPIRE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/spire-$version}
bin="$cache/bin"

log() { echo "spire.sh: $(date -u +%H:%M:%S) $*" >&2; }

if [ -x "$bin/spire-server" ] && [ -x "$bin/spire-agent" ]; then
  log "reusing $bin ($("$bin/spire-server" --version 2>&1 | head -n1))"
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
work=$(mktemp -d "${TMPDIR:-/tmp}/causeway-spire-build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# A throwaway module keeps SPIRE's large dependency graph out of Causeway's go.mod.
# The cloudsql-proxy module that SPIRE depends on has no checksum-database entry here.
export GONOSUMDB=${GONOSUMDB:+$GONOSUMDB,}github.com/GoogleCloudPlatform/cloudsql-proxy
export GOFLAGS=-mod=mod
export CGO_ENABLED=1 # the sqlite datastore needs cgo

start=$(date +%s)
cd "$work"
log "creating throwaway module in $work"
go mod init causeway.local/spirebuild >/dev/null 2>&1 || { log "go mod init failed in $work"; exit 1; }
log "go get spire-server and spire-agent $version (downloads the module graph)"
go get "github.com/spiffe/spire/cmd/spire-server@$version" "github.com/spiffe/spire/cmd/spire-agent@$version"
# go build is silent for minutes (spire-server is the long one); a heartbeat
# shows the build is alive in CI logs. Its sleep gets /dev/null for stdio so
# that, once the loop is killed, nothing holds the caller's pipes open.
( while sleep 60 </dev/null >/dev/null 2>&1; do log "still building ($(( $(date +%s) - start ))s elapsed)"; done ) &
heartbeat=$!
trap 'kill $heartbeat 2>/dev/null; rm -rf "$work"' EXIT
for cmd in spire-server spire-agent; do
  log "go build $cmd"
  # Build into a temporary name and rename, so an interrupted build never leaves a
  # half-written binary that the reuse check above would accept.
  go build -trimpath -o "$bin/.$cmd.tmp" "github.com/spiffe/spire/cmd/$cmd"
  mv "$bin/.$cmd.tmp" "$bin/$cmd"
done
log "built $("$bin/spire-server" --version 2>&1 | head -n1) in $(( $(date +%s) - start ))s into $bin"
echo "$bin"
