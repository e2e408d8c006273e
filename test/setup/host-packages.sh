#!/usr/bin/env bash
# Installs the Debian packages the test suite and the demo drive for real (iptables in network
# namespaces, a packet capture, the openssl CLI, curl for "kubectl exec"-style requests, and real
# MariaDB and PostgreSQL servers and clients for the opaque-port tests). Quick no-op when they are already there.
set -euo pipefail
need=()
command -v iptables >/dev/null 2>&1 || need+=(iptables)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v tcpdump >/dev/null 2>&1 || need+=(tcpdump)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v setpriv >/dev/null 2>&1 || need+=(util-linux)
command -v curl >/dev/null 2>&1 || need+=(curl ca-certificates)
command -v mariadbd >/dev/null 2>&1 || need+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || need+=(mariadb-client)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
command -v psql >/dev/null 2>&1 || need+=(postgresql-client)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "host-packages: missing ${need[*]}; run as root (or: sudo apt-get install ${need[*]}) — the network-namespace tests and the demo need them" >&2
  exit 0
fi
echo "host-packages: installing ${need[*]} from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
