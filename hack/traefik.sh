#!/usr/bin/env bash
# Builds Traefik (the Gateway API data plane of the e2e stack and `make demo`) from Go modules
# (there is no download site reachable here) and prints the path of the binary.
# Cached by version under bin/traefik/<version>/; a binary already present is never rebuilt.
# Also copies Traefik's CRDs (Middleware and the rest of traefik.io) next to it as crds.yaml.
#
# `go install` refuses Traefik because of its replace directives, so it is built through a
# wrapper module that requires it and repeats those directives, with two changes:
#   - github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext is a separate module
#     that is not in Traefik's module zip; upstream it only declares empty extension structs,
#     so the wrapper recreates it as a local module (./ext);
#   - the proxy refuses the github.com/containous/go-http-auth pseudo-version Traefik pins, so
#     the fork's older commit that Traefik <= v3.6 pinned is used instead (it only backs the
#     basicAuth/digestAuth middlewares).
# The wrapper also takes Traefik's whole require block and go.sum (see prepare_wrapper), so every
# dependency builds at the version Traefik pins. The version is stamped like upstream's releases.
set -euo pipefail

TRAEFIK_VERSION="${TRAEFIK_VERSION:-3.7.12}"
# Same fork (github.com/containous/go-http-auth), older commit that the proxy serves.
GO_HTTP_AUTH_FORK_VERSION="${GO_HTTP_AUTH_FORK_VERSION:-v0.4.1-0.20200324110947-a37a7636d23e}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${root}/bin/traefik/${TRAEFIK_VERSION}"
work="${root}/bin/.build/traefik-${TRAEFIK_VERSION}"
module="github.com/traefik/traefik/v3"
mkdir -p "${out}"
name=traefik
# shellcheck source=hack/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

if [ -x "${out}/traefik" ] && [ -f "${out}/crds.yaml" ]; then
  echo "${out}/traefik"
  exit 0
fi

# Downloads the module (a no-op when it is in the module cache) and sets moddir, modfile, modinfo.
download_module() {
  local tmp json
  tmp="$(mktemp -d)"
  json="$(cd "${tmp}" && GOFLAGS=-mod=mod go mod download -json "${module}@v${TRAEFIK_VERSION}")"
  rmdir "${tmp}"
  moddir="$(sed -n 's/.*"Dir": "\(.*\)",/\1/p' <<<"${json}")"
  modfile="$(sed -n 's/.*"GoMod": "\(.*\)",/\1/p' <<<"${json}")"
  modinfo="$(sed -n 's/.*"Info": "\(.*\)",/\1/p' <<<"${json}")"
  [ -d "${moddir}" ] || { log "could not download ${module}@v${TRAEFIK_VERSION}: ${json}"; exit 1; }
}

copy_crds() {
  [ -f "${out}/crds.yaml" ] && return 0
  local crds="${moddir}/docs/content/reference/dynamic-configuration/kubernetes-crd-definition-v1.yml"
  [ -f "${crds}" ] || { log "CRD file missing from the module: ${crds}"; exit 1; }
  install -m 0644 "${crds}" "${out}/crds.yaml.tmp"
  mv "${out}/crds.yaml.tmp" "${out}/crds.yaml"
}

# Prints the lines of every "require" or "replace" directive ($1) of a go.mod ($2), single-line
# or in a block, without comments, one per line with single spaces.
directives() {
  awk -v d="$1" '
    $0 ~ "^" d " \\(" { block = 1; next }
    block && /^\)/ { block = 0; next }
    $0 ~ "^" d " " { sub("^" d " ", ""); print; next }
    block { print }
  ' "$2" | sed 's://.*$::' | awk 'NF > 0 { $1 = $1; print }'
}

prepare_wrapper() {
  [ -f "${work}/.prepared" ] && return 0
  log "preparing wrapper module for ${module} v${TRAEFIK_VERSION}"
  rm -rf "${work}" && mkdir -p "${work}/ext"
  {
    echo "module sluice.dev/traefik-binary"
    echo
    echo "go 1.26.0"
    echo
    # Traefik's own requirements, all of them: its go.mod is not complete for a pruned module
    # graph (it lists github.com/bytedance/sonic but not sonic's own requirements), so as a mere
    # dependency tidy would resolve those to whatever is newest. As direct requirements of the
    # wrapper, every module resolves to the version Traefik itself builds with.
    echo "require ("
    printf '\t%s v%s\n' "${module}" "${TRAEFIK_VERSION}"
    directives require "${modfile}" | awk 'NF == 2 { print "\t" $1 " " $2 }'
    echo ")"
    echo
    echo "replace ("
    directives replace "${modfile}" | awk -v fork="${GO_HTTP_AUTH_FORK_VERSION}" '
      $1 == "github.com/traefik/traefik/dynamic/ext" { print "\t" $1 " => ./ext"; next }
      $1 == "github.com/abbot/go-http-auth" { print "\t" $1 " => " $3 " " fork; next }
      $3 ~ /^\.\.?\// { print "traefik: unexpected local replace in Traefik go.mod: " $0 > "/dev/stderr"; exit 1 }
      { print "\t" $0 }
    '
    echo ")"
  } > "${work}/go.mod"
  # Traefik's go.sum: the checksum database does not know every module Traefik depends on
  # (lookups answer 404 for some lego DNS provider SDKs), and these sums are the ones Traefik
  # was verified with.
  cp "${moddir}/go.sum" "${work}/go.sum" && chmod 0644 "${work}/go.sum"
  # The extension module Traefik imports from pkg/config/dynamic (embedded in HTTPConfiguration
  # and Router); upstream declares the same empty structs.
  cat > "${work}/ext/go.mod" <<'MOD'
module github.com/traefik/traefik/dynamic/ext

go 1.24.0
MOD
  cat > "${work}/ext/ext.go" <<'GO'
// Package ext recreates github.com/traefik/traefik/dynamic/ext, which is not in Traefik's
// module zip: extension points of the dynamic configuration, empty in upstream Traefik.
package ext

// HTTP is a dynamic.HTTP extension.
type HTTP struct{}

// Router is a dynamic.Router extension.
type Router struct{}
GO
  cat > "${work}/tools.go" <<'GO'
//go:build tools

package tools

import _ "github.com/traefik/traefik/v3/cmd/traefik"
GO
  (cd "${work}" && go mod tidy >&2)
  touch "${work}/.prepared"
}

build_traefik() {
  [ -x "${out}/traefik" ] && return 0
  prepare_wrapper
  local pkg="${module}/pkg/version" codename date
  codename="$(sed -n 's/^ *CODENAME: *\([a-z]*\).*/\1/p' "${moddir}/.github/workflows/release.yaml" 2>/dev/null || true)"
  date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' "${modinfo}")"
  log "building traefik v${TRAEFIK_VERSION} (about 6 minutes cold on 2 cores)"
  (cd "${work}" && CGO_ENABLED=0 go build -trimpath -o "${out}/traefik.tmp" \
    -ldflags "-s -w -X ${pkg}.Version=v${TRAEFIK_VERSION} -X ${pkg}.Codename=${codename:-cheddar} -X ${pkg}.BuildDate=${date:-unknown}" \
    "${module}/cmd/traefik" >&2) &
  wait_for $! "building traefik"
  mv "${out}/traefik.tmp" "${out}/traefik"
  log "built traefik"
}

download_module
copy_crds
build_traefik
echo "${out}/traefik"
