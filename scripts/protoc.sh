#!/usr/bin/env bash
# protoc.sh regenerates the Go code for every .proto file under api/.
#
# Reproducible on a fresh machine: protoc comes from Debian's protobuf-compiler
# (installed with apt-get when missing and we are root), and the two Go
# plugins are built at pinned versions into a cache directory, so the
# generated headers never depend on whatever happens to be on PATH.
#
# Usage: scripts/protoc.sh [OUT_DIR]
#   OUT_DIR defaults to the repository root; the freshness test passes a
#   temporary directory and diffs the result against the committed files.
set -euo pipefail

# Keep these in step with go.mod: protoc-gen-go must match
# google.golang.org/protobuf; protoc-gen-go-grpc v1.6.x emits code that needs
# grpc >= 1.64 (SupportPackageIsVersion9), and go.mod has v1.85.0.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root}"
cache="${CAUSEWAY_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/tools}"
bin="$cache/bin"
mkdir -p "$bin"

if ! command -v protoc >/dev/null 2>&1; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
		echo "protoc.sh: installing protobuf-compiler with apt-get" >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q protobuf-compiler >&2
	else
		echo "protoc.sh: protoc not found; install Debian's protobuf-compiler" >&2
		exit 1
	fi
fi

install_plugin() { # name module version
	local stamp="$bin/.$1-$3"
	if [ ! -x "$bin/$1" ] || [ ! -e "$stamp" ]; then
		echo "protoc.sh: building $2@$3" >&2
		GOBIN="$bin" GOFLAGS=-mod=mod go install "$2@$3"
		rm -f "$bin/.$1-"*
		touch "$stamp"
	fi
}
install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

cd "$root"
mapfile -t protos < <(find api -name '*.proto' | LC_ALL=C sort)
mkdir -p "$out"
PATH="$bin:$PATH" protoc \
	--proto_path=. \
	--go_out="$out" --go_opt=paths=source_relative \
	--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
	"${protos[@]}"
