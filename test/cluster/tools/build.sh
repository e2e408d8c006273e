#!/usr/bin/env bash
# Builds the binaries of the real-engine tests (etcd, kube-apiserver, kube-controller-manager,
# pulumi, pulumi-resource-kubernetes) from the Go module proxy only, and
# caches each one under $MESH_TOOLS_CACHE/<name>-<version>/. A tool whose stamp file is there is
# never rebuilt; a build writes into a temp dir and only a finished build is moved in and stamped.
#
#   build.sh                   build what is missing, then print the bin dir
#   build.sh NAME...           only these tools
#   build.sh --print-bin-dir   build nothing; print the bin dir, exit 1 if a tool is missing
#   build.sh --check           build nothing; run each cached tool's version command
#
# The versions live in the wrapper modules next to this script (one folder per tool, each a
# go.mod/go.sum pinning the exact module versions); see README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${MESH_TOOLS_CACHE:-$HOME/.cache/pulumi-mtls-mesh/tools}
bin=$cache/bin
# -mod=mod: the wrapper modules carry no vendor dir and the provider copy needs its go.sum topped up.
# -buildvcs=false: the wrappers sit in this repo's work tree, whose commit is not the tools' version.
# GOWORK=off: a go.work above the repo must not pull the wrappers into someone else's workspace.
export GOFLAGS="-mod=mod -buildvcs=false" GOWORK=off
command -v go >/dev/null || { echo "error: go is not on PATH (Go 1.26 is needed)" >&2; exit 1; }

# pinned DIR MODULE: the version of MODULE required in DIR/go.mod (read offline, no network).
pinned() { (cd "$here/$1" && go mod edit -json) | sed -n "/\"Path\": \"${2//\//\\/}\"/{n;s/.*\"Version\": \"\(.*\)\".*/\1/p;q}"; }

ETCD_VERSION=$(pinned etcd go.etcd.io/etcd/server/v3)
KUBE_VERSION=$(pinned kubernetes k8s.io/kubernetes)
PULUMI_VERSION=$(pinned pulumi github.com/pulumi/pulumi/pkg/v3)
K8S_PROVIDER_MODULE=github.com/pulumi/pulumi-kubernetes/provider/v4
# The proxy serves the provider only as a pseudo-version of its release commit, so the release
# number it reports is written here by hand (keep it in step with the pseudo-version in its go.mod).
K8S_PROVIDER_VERSION=4.25.0

# name version: one line per tool, in build order (small first, so a failure shows early).
tools() {
  echo "etcd $ETCD_VERSION"
  echo "kube-apiserver $KUBE_VERSION"
  echo "kube-controller-manager $KUBE_VERSION"
  echo "pulumi $PULUMI_VERSION"
  echo "pulumi-resource-kubernetes v$K8S_PROVIDER_VERSION"
}

# go build, niced: the machine's 2 cores are shared with whoever is running tests. $1 is the
# -X flags; -s -w drop the symbol table and DWARF, as release builds do (30% smaller).
gobuild() { local x=$1; shift; nice -n 19 go build -trimpath -ldflags "-s -w $x" "$@"; }

# Turns a Go proxy refusal (403/404/410 "not available") into one line naming the module.
explain_go_failure() {
  local log=$1 line
  line=$(grep -m1 -E '(403 Forbidden|404 Not Found|410 Gone|not available|unknown revision|invalid version)' "$log" || true)
  if [[ -n $line ]]; then
    echo "error: the Go module proxy refused a module: ${line#go: }" >&2
  else
    tail -n 20 "$log" >&2
  fi
}

build_etcd() { # $1 = output dir
  (cd "$here/etcd" && gobuild "" -o "$1/etcd" go.etcd.io/etcd/server/v3)
}

build_kube() { # $1 = output dir, $2 = kube-apiserver | kube-controller-manager
  # component-base/version is what /version and --version report; without these flags it is
  # v0.0.0. The proxy gives no commit hash, so gitCommit says so; buildDate is the release
  # commit's time from the proxy, which keeps the binary reproducible.
  local v=${KUBE_VERSION#v} when
  when=$(cd "$here/kubernetes" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' k8s.io/kubernetes)
  local p=k8s.io/component-base/version
  local ldflags="-X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=${v%%.*} -X $p.gitMinor=$(cut -d. -f2 <<<"$v")"
  ldflags+=" -X $p.gitCommit=unknown -X $p.gitTreeState=clean -X $p.buildDate=$when"
  (cd "$here/kubernetes" && gobuild "$ldflags" -o "$1/$2" "k8s.io/kubernetes/cmd/$2")
}

build_pulumi() {
  (cd "$here/pulumi" && gobuild "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
    -o "$1/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
}

build_pulumi-resource-kubernetes() {
  # Its main.go go:embeds schema-embed.json and terraform-mapping-embed.json, which the release
  # build generates (go generate, i.e. its own generate.go) from the committed schema.json and
  # terraform-mapping.json. The module cache is read-only, so this works in a writable copy.
  local src work=$1/.src sdk=github.com/pulumi/pulumi-kubernetes/sdk/v4
  src=$(cd "$here/pulumi-resource-kubernetes" && go mod download -json "$K8S_PROVIDER_MODULE" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
  [[ -n $src ]] && cp -r "$src" "$work" && chmod -R u+w "$work" &&
  # The module replaces its SDK with ../sdk (a sibling folder of its repo, not in the module), so
  # the copy takes the published SDK of the same release instead, with the checksums pinned here.
  (cd "$work" && go mod edit -dropreplace=$sdk -require=$sdk@"$(pinned pulumi-resource-kubernetes $sdk)" &&
    cat "$here/pulumi-resource-kubernetes/go.sum" >>go.sum) &&
  (cd "$work/cmd/pulumi-resource-kubernetes" && VERSION=$K8S_PROVIDER_VERSION nice -n 19 go run -trimpath ./generate.go &&
    gobuild "-X $K8S_PROVIDER_MODULE/pkg/version.Version=$K8S_PROVIDER_VERSION" -o "$1/pulumi-resource-kubernetes" .) &&
  rm -rf "$work"
}

print_bin_dir() {
  local name version missing=0
  while read -r name version; do
    [[ -f $cache/$name-$version/.stamp ]] || { echo "missing: $name $version (run npm run cluster:tools)" >&2; missing=1; }
  done < <(tools)
  echo "$bin"
  return $missing
}

build_one() { # name version
  local name=$1 version=$2 dir=$cache/$1-$2
  if [[ -f $dir/.stamp ]]; then
    echo "$name $version: cached"
  else
    echo "$name $version: starting ($(date -u +%H:%M:%S) UTC)"
    local tmp start=$SECONDS fn=build_$name
    [[ $name == kube-* ]] && fn=build_kube
    # The build goes to a temp dir beside the target; only a finished, stamped build is renamed
    # into place, so an interrupted or failed one leaves no stamp (and is cleaned up on exit).
    tmp=$(mktemp -d "$cache/.building-$name-XXXXXX")
    trap "rm -rf '$tmp' '$tmp.log'" EXIT
    # Each builder is one && chain: set -e does not apply inside this if.
    if ! "$fn" "$tmp" "$name" >"$tmp.log" 2>&1; then
      echo "error: $name $version did not build (log: $tmp.log)" >&2
      explain_go_failure "$tmp.log"
      rm -rf "$tmp" && trap - EXIT
      return 1
    fi
    chmod 755 "$tmp" # mktemp made it private
    echo "built in $((SECONDS - start)) s on $(date -u +%FT%TZ) by $(go env GOVERSION)" >"$tmp/.stamp"
    rm -rf "$dir" && mv "$tmp" "$dir" && rm -f "$tmp.log"
    trap - EXIT
    echo "$name $version: done in $((SECONDS - start)) s"
  fi
  # bin/ holds one link per tool, so PATH needs one entry and pulumi finds its plugins there.
  ln -sfn "../$name-$version/$name" "$bin/$name"
}

check() {
  local b
  b=$(print_bin_dir) || return 1
  "$b/etcd" --version | head -1
  "$b/kube-apiserver" --version
  "$b/kube-controller-manager" --version
  echo "pulumi $("$b/pulumi" version)"
  # The provider is a gRPC plugin with no --version flag: have the CLI start it and ask for its
  # schema, which carries the version (in a throwaway PULUMI_HOME).
  local home
  home=$(mktemp -d)
  PULUMI_HOME=$home PULUMI_SKIP_UPDATE_CHECK=true "$b/pulumi" package get-schema "$b/pulumi-resource-kubernetes" |
    sed -n 's/^  "version": "\(.*\)",$/pulumi-resource-kubernetes \1/p'
  rm -rf "$home"
}

main() {
  if [[ ${1-} == --print-bin-dir ]]; then print_bin_dir; return; fi
  if [[ ${1-} == --check ]]; then check; return; fi
  mkdir -p "$bin"
  local name version failed=()
  while read -r name version; do
    if [[ $# -gt 0 && " $* " != *" $name "* ]]; then continue; fi
    build_one "$name" "$version" || failed+=("$name")
  done < <(tools)
  # The Node.js language host's module (sdk/nodejs/cmd/pulumi-language-nodejs/v3) has no
  # version the proxy serves (see README.md); programs run as Automation API inline programs.
  [[ $# -gt 0 ]] || echo "pulumi-language-nodejs: not built (the Go module proxy serves no version of it)"
  if [[ ${#failed[@]} -gt 0 ]]; then
    echo "error: not built: ${failed[*]}" >&2
    return 1
  fi
  echo "$bin"
}

main "$@"
