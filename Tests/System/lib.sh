# Helpers for systemd-user-test.sh (sourced, bash). Everything here runs inside
# the private mount namespace.

PASS=0
FAIL=0

ok()     { PASS=$((PASS + 1)); printf 'ok - %s\n' "$*"; }
not_ok() { FAIL=$((FAIL + 1)); printf 'not ok - %s\n' "$*"; }
note()   { printf '# %s\n' "$*"; }
# check DESCRIPTION COMMAND...: ok when COMMAND succeeds; its output is shown on failure.
check() {
  local desc=$1; shift
  local out
  if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc"; printf '%s\n' "$out" | sed 's/^/#   /' | head -40; fi
}

now_us()  { echo $(( $(date +%s%N) / 1000 )); }
now_ms()  { echo $(( $(date +%s%N) / 1000000 )); }

sc()  { timeout 60 systemctl --user --no-pager "$@"; }
jn()  { timeout 30 journalctl --no-pager "$@"; }
prop() { sc show -p "$1" --value kvwarm.service; }

# wait_until SECONDS COMMAND...: polls every 0.1 s.
wait_until() {
  local deadline=$(( $(now_ms) + $1 * 1000 )); shift
  while [ "$(now_ms)" -lt "$deadline" ]; do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  "$@" >/dev/null 2>&1
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# http METHOD URL [JSON]: prints the body.
http() {
  if [ $# -ge 3 ]; then curl -sS --max-time 10 -X "$1" -H 'Content-Type: application/json' --data-binary "$3" "$2"
  else curl -sS --max-time 10 -X "$1" "$2"; fi
}

# Journal records of kvwarm as JSON lines, with extra matches.
kvjournal() { jn -t kvwarm -o json "$@"; }

# count_records MATCH...: number of kvwarm records matching.
count_records() { kvjournal "$@" | grep -c . || true; }

# newest_ts MATCH...: __REALTIME_TIMESTAMP (µs) of the newest matching record, or 0.
newest_ts() {
  kvjournal "$@" | python3 -c '
import sys, json
ts = [int(json.loads(l)["__REALTIME_TIMESTAMP"]) for l in sys.stdin if l.strip()]
print(max(ts) if ts else 0)'
}

# Stops kvwarm (if running), clears the failed state and its state directory.
reset_kvwarm() {
  sc stop kvwarm.service >/dev/null 2>&1 || true
  sc reset-failed kvwarm.service >/dev/null 2>&1 || true
  rm -rf "${KVWARM_STATE_DIR:?}"/* 2>/dev/null || true
}

# set_dropin NAME CONTENT: installs (or, with empty CONTENT, removes) a drop-in, then daemon-reload.
set_dropin() {
  local f="$UNIT_DIR/kvwarm.service.d/$1.conf"
  if [ -n "$2" ]; then printf '%s\n' "$2" > "$f"; else rm -f "$f"; fi
  sc daemon-reload
}
