#!/usr/bin/env bash
# install.sh: make sure the tools `make bench` drives are on this machine.
# Debian packages only (the machine's registry); idempotent: when every tool
# is already present it prints one line and does nothing else.
set -euo pipefail

# tool -> Debian package that ships it.
declare -A pkg=(
	[haproxy]=haproxy
	[nginx]=nginx-light
	[wrk]=wrk
	[h2load]=nghttp2-client
	[taskset]=util-linux
)

missing=()
for tool in haproxy nginx wrk h2load taskset; do
	if ! command -v "$tool" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$tool" ]; then
		missing+=("${pkg[$tool]}")
	fi
done

# NGINX's TCP proxy lives in a dynamic module on Debian; ask for it whenever
# NGINX itself is wanted or the module file is absent, so the TCP bulk load
# can compare NGINX too. Its absence is not fatal: the harness marks n/a.
if ! ls /usr/lib/nginx/modules/ngx_stream_module.so >/dev/null 2>&1; then
	missing+=(libnginx-mod-stream)
fi

if [ ${#missing[@]} -eq 0 ]; then
	echo "bench/install.sh: haproxy, nginx, wrk, h2load, taskset already installed"
	exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "bench/install.sh: installing ${missing[*]}"
echo "bench/install.sh: apt-get update"
if ! $SUDO apt-get update -qq >"$log" 2>&1; then
	cat "$log" >&2
	exit 1
fi
# Debian's nginx packages start the daemon on :80 after install; the bench
# never uses that instance, so keep it from starting (policy-rc.d 101).
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
	$SUDO chmod +x "$policy"
	made_policy=1
fi
rc=0
for p in "${missing[@]}"; do
	echo "bench/install.sh: apt-get install $p"
	if ! $SUDO apt-get install -y -qq --no-install-recommends "$p" >"$log" 2>&1; then
		echo "bench/install.sh: could not install $p:" >&2
		tail -5 "$log" >&2
		# stream is optional; the rest are required.
		[ "$p" = libnginx-mod-stream ] || rc=1
	fi
done
if [ "$made_policy" -eq 1 ]; then $SUDO rm -f "$policy"; fi
exit $rc
