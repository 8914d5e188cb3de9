#!/usr/bin/env bash
# Starts a real etcd + kube-apiserver on loopback, for trying Causeway against a cluster by
# hand or from CI steps outside `go test` (Go tests use internal/kubetest, which does the same
# from Go and stops the processes itself).
#
# Usage: scripts/kube-start.sh [RUN_DIR]     start; prints KUBECONFIG=... and the PIDs
#        scripts/kube-start.sh --stop RUN_DIR stop both processes started in RUN_DIR, by PID
# Env:   KUBE_APISERVER_BIN, ETCD_BIN  (default: the cache of scripts/kube-apiserver.sh, $PATH)
#        ETCD_PORT (default 23790; the peer port is ETCD_PORT+1), KAS_PORT (default 64430)
#
# The admin user is a static token in group system:masters; authorization is RBAC, so
# impersonating a ServiceAccount exercises deploy/base/rbac.yaml for real.
set -euo pipefail

if [ "${1:-}" = "--stop" ]; then
  run="${2:?usage: kube-start.sh --stop RUN_DIR}"
  for p in kube-apiserver etcd; do
    if [ -f "$run/$p.pid" ]; then
      pid=$(cat "$run/$p.pid")
      kill "$pid" 2>/dev/null && echo "stopped $p ($pid)" || true
      rm -f "$run/$p.pid"
    fi
  done
  exit 0
fi

version=${KUBE_VERSION:-v1.34.4}
bin="${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/causeway/kube-$version}/bin"
kas="${KUBE_APISERVER_BIN:-$bin/kube-apiserver}"
etcd="${ETCD_BIN:-}"
[ -n "$etcd" ] || { [ -x "$bin/etcd" ] && etcd="$bin/etcd"; } || etcd=$(command -v etcd || true)
[ -x "$kas" ] || { echo "kube-start.sh: no kube-apiserver at $kas; run scripts/kube-apiserver.sh" >&2; exit 1; }
[ -n "$etcd" ] && [ -x "$etcd" ] || { echo "kube-start.sh: no etcd; run scripts/kube-apiserver.sh" >&2; exit 1; }

run="${1:-$(mktemp -d "${TMPDIR:-/tmp}/causeway-kube.XXXXXX")}"
etcd_port=${ETCD_PORT:-23790}
kas_port=${KAS_PORT:-64430}
token=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
mkdir -p "$run/pki" "$run/etcd"
start=$(date +%s.%N)

[ -f "$run/pki/sa.key" ] || {
  openssl genrsa -out "$run/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$run/pki/sa.key" -pubout -out "$run/pki/sa.pub" 2>/dev/null
}
umask 077
echo "$token,admin,admin-uid,system:masters" > "$run/pki/tokens.csv"

"$etcd" --name causeway --data-dir "$run/etcd" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$((etcd_port+1))" --initial-advertise-peer-urls "http://127.0.0.1:$((etcd_port+1))" \
  --initial-cluster "causeway=http://127.0.0.1:$((etcd_port+1))" \
  --log-level warn >"$run/etcd.log" 2>&1 &
echo $! > "$run/etcd.pid"

"$kas" --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$kas_port" \
  --cert-dir "$run/pki" \
  --service-account-issuer "https://127.0.0.1:$kas_port" \
  --service-account-key-file "$run/pki/sa.pub" --service-account-signing-key-file "$run/pki/sa.key" \
  --service-cluster-ip-range 10.0.0.0/24 \
  --token-auth-file "$run/pki/tokens.csv" --authorization-mode RBAC --allow-privileged=true \
  >"$run/kube-apiserver.log" 2>&1 &
echo $! > "$run/kube-apiserver.pid"

ready=""
for _ in $(seq 1 900); do
  if curl -sk --max-time 1 -H "Authorization: Bearer $token" "https://127.0.0.1:$kas_port/readyz" 2>/dev/null | grep -qx ok; then
    ready=1; break
  fi
  for p in etcd kube-apiserver; do
    kill -0 "$(cat "$run/$p.pid")" 2>/dev/null || { echo "kube-start.sh: $p died; see $run/$p.log" >&2; tail -20 "$run/$p.log" >&2; "$0" --stop "$run" >/dev/null; exit 1; }
  done
  sleep 0.1
done
[ -n "$ready" ] || { echo "kube-start.sh: not ready after 90s; see $run/kube-apiserver.log" >&2; "$0" --stop "$run" >/dev/null; exit 1; }

cat > "$run/kubeconfig" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: causeway
  cluster: {server: "https://127.0.0.1:$kas_port", certificate-authority: "$run/pki/apiserver.crt"}
users:
- name: admin
  user: {token: "$token"}
contexts:
- name: causeway
  context: {cluster: causeway, user: admin}
current-context: causeway
KUBECONFIG
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
echo "kube-start.sh: ready in ${took}s; etcd pid $(cat "$run/etcd.pid"), kube-apiserver pid $(cat "$run/kube-apiserver.pid")" >&2
echo "kube-start.sh: stop with: scripts/kube-start.sh --stop $run" >&2
echo "KUBECONFIG=$run/kubeconfig"
