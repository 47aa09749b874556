#!/usr/bin/env bash
# Checks what `make test` and `make demo` need before any long build, and installs the
# missing Debian packages when run as root; otherwise stops at once with the exact command.
#   hack/prereqs.sh test|demo
set -euo pipefail
what="${1:-test}"
log() { echo "prereqs: $*" >&2; }

command -v go >/dev/null || { log "Go is missing: install Go 1.26 (https://go.dev/dl/)"; exit 1; }

# command → Debian package
declare -A need=([prometheus]=prometheus [promtool]=prometheus [ip]=iproute2 [tmux]=tmux)
missing=()
for cmd in "${!need[@]}"; do
  command -v "${cmd}" >/dev/null 2>&1 || missing+=("${need[${cmd}]}")
done
if [ ${#missing[@]} -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    log "missing Debian packages: ${missing[*]}; install them first:"
    log "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}"
    exit 1
  fi
  log "installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The end-to-end cluster makes a network namespace and addresses: that takes root.
if [ "$(id -u)" -ne 0 ]; then
  log "make ${what} runs the end-to-end cluster in its own network namespace, which needs root:"
  log "  sudo make ${what}"
  exit 1
fi
