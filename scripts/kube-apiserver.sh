#!/usr/bin/env bash
# Builds kube-apiserver from Go modules at a pinned release into a cache directory, makes sure
# an etcd binary exists, and prints the bin directory on the last line of stdout. Reuses the
# binary if it is already there, so CI can cache the directory between runs.
#
# Usage: scripts/kube-apiserver.sh          (build or reuse; prints the bin directory)
# Env:   KUBE_VERSION   default v1.34.4 (must match scripts/kube-apiserver.go.mod)
#        KUBE_CACHE     default ${XDG_CACHE_HOME:-$HOME/.cache}/causeway/kube-$KUBE_VERSION
#        KUBE_NO_ETCD_INSTALL=1  do not apt-get install etcd-server when etcd is missing
#
# Tests (internal/kubetest) find the binaries through KUBE_APISERVER_BIN / ETCD_BIN, or in the
# default cache directory and $PATH when those are unset.
#
# kube-apiserver is not published as a Go module on its own: k8s.io/kubernetes requires every
# staging module at v0.0.0, so scripts/kube-apiserver.go.mod (a data file of versions) replaces
# each of them with the matching v0.x tag. The build takes about 7.5 minutes and 2.2 GB of
# build cache on two cores.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
version=${KUBE_VERSION:-v1.34.4}
cache=${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/kube-$version}
bin="$cache/bin"

log() { echo "kube-apiserver.sh: $(date -u +%H:%M:%S) $*" >&2; }

ensure_etcd() {
  if [ -x "$bin/etcd" ]; then return 0; fi
  local e
  e=$(command -v etcd || true)
  if [ -z "$e" ] && [ -z "${KUBE_NO_ETCD_INSTALL:-}" ]; then
    log "etcd not found; installing Debian's etcd-server"
    local sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq etcd-server >/dev/null
    e=$(command -v etcd || true)
  fi
  if [ -z "$e" ]; then
    log "etcd is missing and could not be installed"
    return 1
  fi
  # A symlink in the cache dir lets tests find both binaries in one place.
  ln -sf "$e" "$bin/etcd"
  log "etcd: $("$e" --version 2>&1 | head -n1)"
}

mkdir -p "$bin"
ensure_etcd

if [ -x "$bin/kube-apiserver" ]; then
  log "reusing $bin/kube-apiserver ($("$bin/kube-apiserver" --version 2>&1 | head -n1))"
  echo "$bin"
  exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/causeway-kube-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp "$here/kube-apiserver.go.mod" "$work/go.mod"

# go.sum is not pinned in the repository: -mod=mod lets go record the sums it fetches, which
# are still checked against the checksum database.
export GOFLAGS=-mod=mod
export CGO_ENABLED=0

start=$(date +%s)
cd "$work"
log "downloading the k8s.io/kubernetes $version module graph"
go mod download k8s.io/kubernetes
ver=${version#v}
ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$version"
ldflags+=" -X k8s.io/component-base/version.gitMajor=${ver%%.*}"
minor=${ver#*.}
ldflags+=" -X k8s.io/component-base/version.gitMinor=${minor%%.*}"
log "go build kube-apiserver (several minutes)"
# Build into a temporary name and rename, so an interrupted build never leaves a half-written
# binary that the reuse check above would accept.
go build -trimpath -ldflags "$ldflags" -o "$bin/.kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv "$bin/.kube-apiserver.tmp" "$bin/kube-apiserver"
log "built $("$bin/kube-apiserver" --version 2>&1 | head -n1) in $(( $(date +%s) - start ))s into $bin"
echo "$bin"
