#!/usr/bin/env bash
# Installs what internal/redirect's real network-namespace test needs: ip(8)
# from Debian's iproute2 and iptables (nft backend) from Debian's iptables.
# Idempotent; prints what it did. Needs root (as CI and developers are here).
# After it, CAUSEWAY_REQUIRE_NETNS=1 makes that test fail instead of skip.
set -euo pipefail
need=()
command -v ip >/dev/null || need+=(iproute2)
{ command -v iptables-restore && command -v iptables-save; } >/dev/null || need+=(iptables)
if [ ${#need[@]} -eq 0 ]; then
  echo "netns-tools: ip and iptables present"
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "netns-tools: need root to install ${need[*]}" >&2
  exit 1
fi
echo "netns-tools: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
echo "netns-tools: $(iptables --version)"
