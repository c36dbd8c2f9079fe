# Start/stop one pcscd in the foreground (sourced by .ci/run; tests reuse it via its socket).
# Only one pcscd may run per machine: an existing one (or systemd's socket) is reused as is.
PCSCD_SOCKET=/run/pcscd/pcscd.comm
PCSCD_LOG=${PCSCD_LOG:-/tmp/jpki-pcscd.log}
start_pcscd() {
  PCSCD_PID=""
  if [ -S "$PCSCD_SOCKET" ] && { pgrep -x pcscd >/dev/null \
      || systemctl is-active --quiet pcscd.socket 2>/dev/null; }; then
    echo "pcscd already running"; return 0
  fi
  rm -f "$PCSCD_SOCKET"  # stale after a kill -9
  mkdir -p /run/pcscd
  # No -x (auto-exit when idle); add --debug --apdu here to see the APDUs in $PCSCD_LOG.
  pcscd --foreground >"$PCSCD_LOG" 2>&1 &
  PCSCD_PID=$!
  for _ in $(seq 1 100); do
    [ -S "$PCSCD_SOCKET" ] && { echo "pcscd up (pid $PCSCD_PID)"; return 0; }
    kill -0 "$PCSCD_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "pcscd did not create $PCSCD_SOCKET"; cat "$PCSCD_LOG"; return 1
}
stop_pcscd() {
  if [ -n "${PCSCD_PID:-}" ]; then
    kill "$PCSCD_PID" 2>/dev/null || true
    wait "$PCSCD_PID" 2>/dev/null || true
  fi
}
