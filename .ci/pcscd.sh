# Start/stop one pcscd in the foreground (sourced by .ci/run; tests reuse it via its socket).
PCSCD_SOCKET=/run/pcscd/pcscd.comm
start_pcscd() {
  if [ -S "$PCSCD_SOCKET" ] && pgrep -x pcscd >/dev/null; then
    echo "pcscd already running"; PCSCD_PID=""; return 0
  fi
  rm -f "$PCSCD_SOCKET"
  mkdir -p /run/pcscd
  pcscd --foreground >/tmp/jpki-pcscd.log 2>&1 &
  PCSCD_PID=$!
  for _ in $(seq 1 100); do
    [ -S "$PCSCD_SOCKET" ] && { echo "pcscd up (pid $PCSCD_PID)"; return 0; }
    sleep 0.1
  done
  echo "pcscd did not create $PCSCD_SOCKET"; cat /tmp/jpki-pcscd.log; return 1
}
stop_pcscd() {
  if [ -n "${PCSCD_PID:-}" ]; then kill "$PCSCD_PID" 2>/dev/null || true; wait "$PCSCD_PID" 2>/dev/null || true; fi
}
