#!/usr/bin/env bash
# Build the local test cluster's binaries from the official Go modules, at the versions pinned in
# tests/sim/versions.env, into a cache keyed by version:
#   ${XDG_CACHE_HOME:-~/.cache}/dataflywheel-blueprint/bin/<name>-<version>/<name>
# A binary already in the cache is not rebuilt, so a warm run costs nothing.
#
# k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces the staging modules
# (k8s.io/api, k8s.io/apiserver, ...) with paths inside its own tree. We build it from a
# throw-away wrapper module that requires it and re-points every such replace at the published
# staging module of the matching version (v1.34.4 -> v0.34.4).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/sim/versions.env
. "$here/versions.env"
cache=${DFW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/dataflywheel-blueprint}
bindir="$cache/bin"
work="$cache/build"
mkdir -p "$bindir" "$work"
export GOFLAGS="-mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN:-auto}

log() { printf '[build-binaries] %s\n' "$*" >&2; }
have() { [ -x "$bindir/$1-$2/$1" ]; }

# wrapper DIR MODULE VERSION STAGING_VERSION: make a module in DIR that requires MODULE@VERSION
# and turns each of the upstream go.mod's local-path replaces ("X => ./staging/...",
# "X => ../api") into "X => X STAGING_VERSION"; its versioned replaces, in a replace block or on
# one "replace X => Y v" line, are copied as they are.
wrapper() {
  local dir=$1 mod=$2 ver=$3 staging_ver=$4
  mkdir -p "$dir"
  (
    cd "$dir"
    [ -f go.mod ] || go mod init "dfw.local/build/$(basename "$dir")" >/dev/null 2>&1
    local gomod
    gomod=$(go mod download -json "$mod@$ver" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
    sed -n 's#^[[:space:]]*\([^[:space:]]*\)[[:space:]]*=>[[:space:]]*\.\{1,2\}/.*#\1#p' "$gomod" |
      { grep -v FORBIDDEN || true; } | while read -r m; do go mod edit -replace="$m=$m@$staging_ver"; done
    sed -n 's#^[[:space:]]*\(replace[[:space:]]\{1,\}\)\{0,1\}\([^[:space:]]*\)[[:space:]]*=>[[:space:]]*\([^.][^[:space:]]*\)[[:space:]]\+\(v[^[:space:]]*\).*#\2 \3 \4#p' "$gomod" |
      while read -r m to v; do go mod edit -replace="$m=$to@$v"; done
    go mod edit -require="$mod@$ver"
  )
}

build_kube() {
  local v=$KUBERNETES_VERSION staging="v0.${KUBERNETES_VERSION#v1.}" missing=()
  for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    have "$c" "$v" || missing+=("$c")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "building ${missing[*]} $v (cold build: several minutes per binary on 2 cores)"
  local dir="$work/kubernetes-$v"
  wrapper "$dir" k8s.io/kubernetes "$v" "$staging"
  local minor=${v#v1.}; minor=${minor%%.*}
  local pkg=k8s.io/component-base/version
  local ld="-s -w -X $pkg.gitVersion=$v -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
  ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  ld+=" -X k8s.io/client-go/pkg/version.gitVersion=$v"
  for c in "${missing[@]}"; do
    (cd "$dir" && mkdir -p "$bindir/$c-$v.tmp" &&
     go build -trimpath -ldflags "$ld" -o "$bindir/$c-$v.tmp/$c" "k8s.io/kubernetes/cmd/$c")
    rm -rf "$bindir/$c-$v" && mv "$bindir/$c-$v.tmp" "$bindir/$c-$v"
    log "built $c $v"
  done
}

build_etcd() {
  local v=$ETCD_VERSION
  have etcd "$v" && return 0
  log "building etcd $v"
  local dir="$work/etcd-$v"
  wrapper "$dir" go.etcd.io/etcd/server/v3 "$v" "$v"
  (cd "$dir" && mkdir -p "$bindir/etcd-$v.tmp" &&
   go build -trimpath -ldflags "-s -w" -o "$bindir/etcd-$v.tmp/etcd" go.etcd.io/etcd/server/v3)
  rm -rf "$bindir/etcd-$v" && mv "$bindir/etcd-$v.tmp" "$bindir/etcd-$v"
  log "built etcd $v"
}

# plain modules that go install can build: NAME MODULE/PKG VERSION
build_plain() {
  local name=$1 pkg=$2 v=$3 ld=${4:-}
  have "$name" "$v" && return 0
  log "building $name $v"
  local tmp="$bindir/$name-$v.tmp"
  mkdir -p "$tmp"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w $ld" "$pkg@$v"
  [ -x "$tmp/$name" ] || mv "$tmp"/* "$tmp/$name"
  rm -rf "$bindir/$name-$v" && mv "$tmp" "$bindir/$name-$v"
  log "built $name $v"
}

# helm-diff as a helm plugin directory: $bindir/helm-diff-<v>/diff/{plugin.yaml,bin/diff}. Point
# HELM_PLUGINS at $bindir/helm-diff-<v>. Built from a wrapper module: `go install mod@v` would ask
# the proxy for the module's version list, which it does not serve for this module.
build_helm_diff() {
  local v=$HELM_DIFF_VERSION
  [ -x "$bindir/helm-diff-$v/diff/bin/diff" ] && return 0
  log "building helm-diff $v"
  local dir="$work/helm-diff-$v" tmp="$bindir/helm-diff-$v.tmp"
  mkdir -p "$dir" "$tmp/diff/bin"
  (cd "$dir" && { [ -f go.mod ] || go mod init dfw.local/build/helm-diff >/dev/null 2>&1; } &&
   go mod edit -require="github.com/databus23/helm-diff/v3@$v" &&
   go build -trimpath -ldflags "-s -w -X github.com/databus23/helm-diff/v3/cmd.Version=${v#v}" \
     -o "$tmp/diff/bin/diff" github.com/databus23/helm-diff/v3)
  cat >"$tmp/diff/plugin.yaml" <<PLUGIN
name: "diff"
version: "${v#v}"
usage: "Preview helm upgrade changes as a diff"
description: "helm-diff ${v#v}, built from its Go module by dataflywheel.blueprint tests/sim/build-binaries.sh"
useTunnel: true
command: "\$HELM_PLUGIN_DIR/bin/diff"
PLUGIN
  rm -rf "$bindir/helm-diff-$v" && mv "$tmp" "$bindir/helm-diff-$v"
  log "built helm-diff $v"
}

# kyverno CLI (kubectl-kyverno), the real policy engine the Kyverno route of the remediate role is
# checked with (`kyverno apply`). Its go.mod has a versioned replace, so `go install mod@v` refuses
# it; it is built from a wrapper module that copies that replace.
build_kyverno() {
  local v=$KYVERNO_VERSION
  have kyverno "$v" && return 0
  log "building kyverno CLI $v (cold build: about 15 CPU-minutes, link peak 2.7 GB)"
  local dir="$work/kyverno-$v" tmp="$bindir/kyverno-$v.tmp"
  wrapper "$dir" github.com/kyverno/kyverno "$v" "$v"
  mkdir -p "$tmp"
  (cd "$dir" &&
   go build -trimpath -ldflags "-s -w -X github.com/kyverno/kyverno/pkg/version.BuildVersion=$v" \
     -o "$tmp/kyverno" github.com/kyverno/kyverno/cmd/cli/kubectl-kyverno)
  rm -rf "$bindir/kyverno-$v" && mv "$tmp" "$bindir/kyverno-$v"
  log "built kyverno CLI $v"
}

what=${1:-all}
case $what in
  all|kube) build_kube ;;&
  all|etcd) build_etcd ;;&
  all|kwok)
    build_plain kwok sigs.k8s.io/kwok/cmd/kwok "$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION"
    build_plain kwokctl sigs.k8s.io/kwok/cmd/kwokctl "$KWOK_VERSION" "-X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" ;;&
  all|helm)
    build_plain helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    build_helm_diff ;;&
  all|kyverno) build_kyverno ;;
  *) ;;
esac
