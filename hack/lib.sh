# Sourced by the build scripts: progress lines for long, cold builds. Set `name` first.
started=$SECONDS
# Every line says how long the build has run so far.
log() { echo "${name} [+$((SECONDS - started))s]: $*" >&2; }
# wait_for waits for a background build, saying every 30 s that it is still at it.
wait_for() {
  local pid="$1" what="$2" n=0
  while kill -0 "${pid}" 2>/dev/null; do
    sleep 1
    n=$((n + 1))
    if (( n % 30 == 0 )) && kill -0 "${pid}" 2>/dev/null; then log "still ${what}"; fi
  done
  wait "${pid}"
}
