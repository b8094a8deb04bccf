#!/usr/bin/env bash
# System test: kvwarm's shipped unit under a real systemd user manager and journald.
#
#   bash Tests/System/systemd-user-test.sh      (root; after `swift build`)
#
# No systemd runs as PID 1 on the CI machine, so the test builds its own:
#   - a cgroup of its own (/sys/fs/cgroup/{systemd,unified}/kvwarm-systest-PID), so the
#     user manager treats that as its root and never migrates the machine's processes;
#   - a private mount namespace (unshare -m --propagation private) in which
#       /run                    is made a mount point (a bind of itself; see below),
#       /run/systemd            is a bind of an empty directory holding system/ (so
#                               systemctl believes systemd is running),
#       /run/log                is a tmpfs (journald's volatile store),
#       /usr/lib/systemd/catalog and /var/lib/systemd/catalog are binds of copies with
#                               packaging/kvwarm.catalog added (journalctl --update-catalog);
#   - /lib/systemd/systemd-journald, then /lib/systemd/systemd --user with
#     XDG_RUNTIME_DIR/XDG_CONFIG_HOME under the work directory; systemctl --user
#     talks to it over $XDG_RUNTIME_DIR/systemd/private, journalctl reads /run/log/journal.
# The unit is packaging/kvwarm.service with ExecStart= pointed at the built binary and a
# test config. Every other line is kept, except the ones a user manager cannot apply
# (see strip_unit_lines in make-unit.sh for the list and why). Test-only settings are
# drop-ins, as an operator would write them.
#
# Backends: the real llama-server (~/.cache/kvwarm-test, from .ci/provision) for the
# start/journal/touch/reload/stop checks, Tests/Fixtures/fake_llama_server.py for the
# slow-warm, mid-warm stop, unavailable backend and hung pipeline checks.
#
# Output: "ok - …" / "not ok - …" per check, then "N passed, N failed"; exit 1 on any
# failure. Everything started here is torn down on exit, also after a failure or a signal.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

if [ "${1:-}" != "--inner" ]; then
  # ---- outer: prerequisites, work directory, cgroup, namespace -----------------------
  setup_fail() { printf 'not ok - setup: %s\n0 passed, 1 failed\n' "$*"; exit 1; }
  [ "$(id -u)" -eq 0 ] || setup_fail "needs root (mount namespace, cgroups)"
  for b in unshare mount /lib/systemd/systemd /lib/systemd/systemd-journald systemctl journalctl python3 curl; do
    command -v "$b" >/dev/null || setup_fail "missing $b"
  done
  BIN=${KVWARM_BIN:-$ROOT/.build/debug/kvwarm}
  [ -x "$BIN" ] || setup_fail "no kvwarm binary at $BIN (swift build first)"
  CACHE=${KVWARM_TEST_CACHE:-$HOME/.cache/kvwarm-test}
  export LLAMA_SERVER=${LLAMA_SERVER:-$CACHE/bin/llama-server}
  export KVWARM_TEST_MODEL=${KVWARM_TEST_MODEL:-$CACHE/models/gemma-3-270m-q4_k_m.gguf}
  [ -x "$LLAMA_SERVER" ] && [ -f "$KVWARM_TEST_MODEL" ] || setup_fail "llama-server or model missing (run .ci/provision)"

  # Not under /tmp, /var/tmp, /home, /root or /run/user: the unit's PrivateTmp= and
  # ProtectHome= would hide it from kvwarm.
  WORK=$(mktemp -d /var/lib/kvwarm-systest.XXXXXX) || setup_fail "mktemp"
  CG=kvwarm-systest-$$
  cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # Whatever is still alive in our cgroup was started by this test.
    local d p left
    for attempt in 1 2 3 4 5 6 7 8 9 10; do
      left=0
      for d in /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"; do
        [ -d "$d" ] || continue
        while read -r p; do [ -n "$p" ] && { kill -KILL "$p" 2>/dev/null; left=1; }; done \
          < <(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null)
      done
      [ $left -eq 0 ] && break
      sleep 0.2
    done
    for d in /sys/fs/cgroup/*/"$CG" /sys/fs/cgroup/"$CG"; do
      [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    done
    rm -rf "$WORK"
    exit $rc
  }
  INNER=
  # A signal is forwarded to the inner script, which tears down what it started and
  # prints its summary; cleanup then kills whatever is left in the cgroup.
  on_signal() {
    if [ -n "$INNER" ]; then
      kill -TERM "$INNER" 2>/dev/null
      for _ in $(seq 300); do kill -0 "$INNER" 2>/dev/null || break; sleep 0.1; done
    fi
    exit 130
  }
  trap cleanup EXIT
  trap on_signal INT TERM
  # The user manager takes the cgroup it starts in as its root and moves every process
  # of that cgroup into init.scope: it must never start in the machine's root cgroup.
  # Hybrid hierarchy (this machine): name=systemd and unified; pure v2: /sys/fs/cgroup.
  CGDIRS=()
  for h in /sys/fs/cgroup/systemd /sys/fs/cgroup/unified; do [ -d "$h" ] && CGDIRS+=("$h/$CG"); done
  [ ${#CGDIRS[@]} -gt 0 ] || { [ -f /sys/fs/cgroup/cgroup.controllers ] && CGDIRS+=("/sys/fs/cgroup/$CG"); }
  [ ${#CGDIRS[@]} -gt 0 ] || setup_fail "no systemd or cgroup2 hierarchy under /sys/fs/cgroup"
  for d in "${CGDIRS[@]}"; do mkdir -p "$d" || setup_fail "cannot create cgroup $d"; done
  (
    for d in "${CGDIRS[@]}"; do echo "$BASHPID" > "$d/cgroup.procs" || exit 1; done
    exec unshare -m --propagation private bash "${BASH_SOURCE[0]}" --inner "$WORK" "$BIN"
  ) &
  INNER=$!
  wait "$INNER"
  rc=$?
  INNER=
  exit $rc
fi

# ---- inner: runs in the private mount namespace ----------------------------------------
WORK=$2
BIN=$3
# shellcheck source=lib.sh
source "$HERE/lib.sh"

JOURNALD_PID= MANAGER_PID= LLAMA_PID= FAKE_PID=
teardown() {
  trap - EXIT INT TERM
  [ -n "$MANAGER_PID" ] && timeout 15 systemctl --user stop kvwarm.service >/dev/null 2>&1
  local p
  for p in $LLAMA_PID $FAKE_PID; do kill -TERM "$p" 2>/dev/null; done
  if [ -n "$MANAGER_PID" ]; then
    # SIGTERM makes the user manager stop every unit and exit.
    kill -TERM "$MANAGER_PID" 2>/dev/null
    for _ in $(seq 100); do kill -0 "$MANAGER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$MANAGER_PID" 2>/dev/null
  fi
  for p in $LLAMA_PID $FAKE_PID; do
    for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null
  done
  if [ -n "$JOURNALD_PID" ]; then
    kill -TERM "$JOURNALD_PID" 2>/dev/null
    for _ in $(seq 30); do kill -0 "$JOURNALD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$JOURNALD_PID" 2>/dev/null
  fi
  wait 2>/dev/null
  [ $((PASS + FAIL)) -gt 0 ] || not_ok "no check ran"
  printf '%d passed, %d failed\n' "$PASS" "$FAIL"
  [ "$FAIL" -eq 0 ]
  exit $?
}
trap teardown EXIT
trap 'not_ok "interrupted"; exit 1' INT TERM
die() { not_ok "setup: $*"; exit 1; }

T_START=$(now_ms)
mkdir -p "$WORK"/{run-systemd/system,runlog,runtime,config,etc,templates,slots/real,slots/fake,logs,catalog,catalog-db} \
  || die "work directories"
chmod 0700 "$WORK/runtime"

# -- namespace mounts ---------------------------------------------------------------------
# /run must be a mount point, as on any systemd machine: the sandbox's implied
# MountAPIVFS= puts an empty tmpfs on /run when it is not one (it is a plain directory
# here), and kvwarm would then find no /run/systemd/journal/socket.
mountpoint -q /run || mount --bind /run /run || die "bind /run"
mount --bind "$WORK/run-systemd" /run/systemd || die "bind /run/systemd"
mkdir -p /run/systemd/journal
mkdir -p /run/log && mount -t tmpfs -o mode=0755 tmpfs /run/log || die "tmpfs /run/log"
if [ -d /var/log/journal ]; then mount -t tmpfs tmpfs /var/log/journal || die "tmpfs /var/log/journal"; fi
cp -a /usr/lib/systemd/catalog/. "$WORK/catalog/" 2>/dev/null
cp "$ROOT/packaging/kvwarm.catalog" "$WORK/catalog/kvwarm.catalog"
mount --bind "$WORK/catalog" /usr/lib/systemd/catalog || die "bind catalog sources"
mkdir -p /var/lib/systemd/catalog
mount --bind "$WORK/catalog-db" /var/lib/systemd/catalog || die "bind catalog database"
journalctl --update-catalog || die "journalctl --update-catalog"

# -- journald -------------------------------------------------------------------------------
# Volatile only, no rate limit on the test's bursts.
mkdir -p "$WORK/etc/journald"
printf '[Journal]\nStorage=volatile\nRateLimitBurst=0\nForwardToSyslog=no\n' >"$WORK/etc/journald/journald.conf"
if [ -f /etc/systemd/journald.conf ]; then
  mount --bind "$WORK/etc/journald/journald.conf" /etc/systemd/journald.conf || die "bind journald.conf"
else
  die "no /etc/systemd/journald.conf to bind over"
fi
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd-journald >"$WORK/logs/journald.log" 2>&1 &
JOURNALD_PID=$!
wait_until 10 test -S /run/systemd/journal/socket -a -S /run/systemd/journal/stdout \
  || die "journald did not create its sockets: $(tail -5 "$WORK/logs/journald.log")"

# -- the user manager ------------------------------------------------------------------------
export XDG_RUNTIME_DIR=$WORK/runtime XDG_CONFIG_HOME=$WORK/config
unset DBUS_SESSION_BUS_ADDRESS NOTIFY_SOCKET JOURNAL_STREAM WATCHDOG_USEC WATCHDOG_PID
# SYSTEMD_LOG_TARGET: a user manager whose stderr is not a journal stream logs to stderr.
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$HOME" LANG=C.UTF-8 USER=root LOGNAME=root SYSTEMD_LOG_TARGET=journal \
  XDG_RUNTIME_DIR="$XDG_RUNTIME_DIR" XDG_CONFIG_HOME="$XDG_CONFIG_HOME" \
  /lib/systemd/systemd --user >"$WORK/logs/manager.log" 2>&1 &
MANAGER_PID=$!
wait_until 20 test -S "$XDG_RUNTIME_DIR/systemd/private" || die "no user manager socket: $(tail -5 "$WORK/logs/manager.log")"
wait_until 20 bash -c 'systemctl --user is-system-running | grep -qE "running|degraded"' \
  || die "user manager not running: $(systemctl --user is-system-running 2>&1)"
# PID 1 normally provides /run/systemd/inaccessible/{dir,reg,fifo,sock,chr,blk}, which
# ProtectHome= and InaccessiblePaths= mount over hidden paths; the user manager made its
# own copy under $XDG_RUNTIME_DIR, and the unit's namespace setup looks in /run/systemd.
cp -a "$XDG_RUNTIME_DIR/systemd/inaccessible" /run/systemd/ || die "inaccessible nodes"
note "journald $JOURNALD_PID and systemd --user $MANAGER_PID up in $(( $(now_ms) - T_START )) ms"

# -- the unit ----------------------------------------------------------------------------------
UNIT_DIR=$XDG_CONFIG_HOME/systemd/user
CONFIG=$WORK/etc/config.json
mkdir -p "$UNIT_DIR/kvwarm.service.d"
KVBIN=$BIN
case "$BIN" in
  /home/*|/root/*|/run/user/*|/tmp/*|/var/tmp/*)
    # ProtectHome=/PrivateTmp= hide it from the service: run a copy instead.
    mkdir -p "$WORK/bin" && cp "$BIN" "$WORK/bin/kvwarm" && KVBIN=$WORK/bin/kvwarm ;;
esac
bash "$HERE/make-unit.sh" "$ROOT/packaging/kvwarm.service" "$KVBIN" "$CONFIG" >"$UNIT_DIR/kvwarm.service" \
  || die "make-unit.sh"
# The operator's drop-in for a slot directory elsewhere than /var/lib/llama-server/slots.
cat >"$UNIT_DIR/kvwarm.service.d/10-slots.conf" <<EOF
[Service]
ReadWritePaths=$WORK/slots
EOF
# kvwarm@.service as shipped (its config is $WORK/etc/%i.json here), with the same slot drop-in.
bash "$HERE/make-unit.sh" "$ROOT/packaging/kvwarm@.service" "$KVBIN" "$WORK/etc/%i.json" >"$UNIT_DIR/kvwarm@.service" \
  || die "make-unit.sh (kvwarm@.service)"
mkdir -p "$UNIT_DIR/kvwarm@.service.d"
cp "$UNIT_DIR/kvwarm.service.d/10-slots.conf" "$UNIT_DIR/kvwarm@.service.d/10-slots.conf"
sc daemon-reload || die "daemon-reload"
# StateDirectory=kvwarm of a user manager (systemd 252) is $XDG_CONFIG_HOME/kvwarm.
KVWARM_STATE_DIR=$XDG_CONFIG_HOME/kvwarm
[ "$(prop LoadState)" = loaded ] || die "kvwarm.service not loaded: $(sc status kvwarm.service 2>&1 | head -5)"

source "${KVWARM_SYSTEST_CASES:-$HERE/cases.sh}"
exit 0
