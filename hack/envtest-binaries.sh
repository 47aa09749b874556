#!/usr/bin/env bash
# Builds kube-apiserver, kube-controller-manager and etcd from Go modules (there is no download
# site reachable here) and prints the folder to use as KUBEBUILDER_ASSETS.
# Cached by version under bin/k8s/<version>/; a binary already present is never rebuilt.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-3.6.16}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${root}/bin/k8s/${K8S_VERSION}"
mkdir -p "${out}"
name=envtest-binaries
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"


minor="${K8S_VERSION#*.}"; minor="${minor%%.*}"
staging_version="v0.${K8S_VERSION#*.}"

build_kube() {
  local cmd="$1"
  [ -x "${out}/${cmd}" ] && return 0
  local work="${root}/bin/.build/k8s-${K8S_VERSION}"
  if [ ! -f "${work}/go.sum" ]; then
    log "preparing wrapper module for k8s.io/kubernetes v${K8S_VERSION}"
    rm -rf "${work}" && mkdir -p "${work}"
    local modfile
    modfile="$(cd "${work}" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",/\1/p')"
    {
      echo "module sluice.dev/k8s-binaries"
      echo
      echo "go 1.26"
      echo
      echo "require k8s.io/kubernetes v${K8S_VERSION}"
      echo
      echo "replace ("
      # Every staging module k8s.io/kubernetes replaces with a local folder is published as v0.Y.Z.
      sed -n '/^replace (/,/^)/p' "${modfile}" | awk -v v="${staging_version}" '$2=="=>" && $3 ~ /^\.\/staging/ {print "\t" $1 " => " $1 " " v}'
      echo ")"
    } > "${work}/go.mod"
    cat > "${work}/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
)
GO
    (cd "${work}" && go mod tidy >&2)
  fi
  log "building ${cmd} v${K8S_VERSION} (about 4 minutes cold on 2 cores)"
  local pkg="k8s.io/component-base/version"
  (cd "${work}" && CGO_ENABLED=0 go build -o "${out}/${cmd}.tmp" \
    -ldflags "-s -w -X ${pkg}.gitVersion=v${K8S_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean" \
    "k8s.io/kubernetes/cmd/${cmd}" >&2) &
  wait_for $! "building ${cmd}"
  mv "${out}/${cmd}.tmp" "${out}/${cmd}"
  log "built ${cmd}"
}

build_etcd() {
  [ -x "${out}/etcd" ] && return 0
  local work="${root}/bin/.build/etcd-${ETCD_VERSION}"
  rm -rf "${work}" && mkdir -p "${work}"
  log "building etcd v${ETCD_VERSION}"
  cat > "${work}/go.mod" <<MOD
module sluice.dev/etcd-binary

go 1.26

require go.etcd.io/etcd/server/v3 v${ETCD_VERSION}
MOD
  cat > "${work}/tools.go" <<'GO'
//go:build tools

package tools

import _ "go.etcd.io/etcd/server/v3"
GO
  (cd "${work}" && go mod tidy >&2 && CGO_ENABLED=0 go build -ldflags "-s -w" -o "${out}/etcd.tmp" go.etcd.io/etcd/server/v3 >&2) &
  wait_for $! "building etcd"
  mv "${out}/etcd.tmp" "${out}/etcd"
  log "built etcd"
}

[ -x "${out}/etcd" ] && [ -x "${out}/kube-apiserver" ] && [ -x "${out}/kube-controller-manager" ] ||
  log "3 binaries to build into ${out}: etcd (about 1 minute), kube-apiserver and kube-controller-manager (about 4 minutes each); cached afterwards"
build_etcd
build_kube kube-apiserver
build_kube kube-controller-manager
echo "${out}"
