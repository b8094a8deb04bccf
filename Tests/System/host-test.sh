#!/usr/bin/env bash
# The .deb under a real system manager: Debian 12 booted with systemd as PID 1 in
# systemd-nspawn (the cached rootfs from .ci/provision), kvwarm installed with dpkg,
# the real llama-server (bind-mounted from the test cache, started with --api-key-file)
# as a system unit, and the checks issue 16 lists, as `ok`/`not ok` lines and a closing
# `N passed, N failed`.
#
#   sudo bash Tests/System/host-test.sh
#
# Environment: KVWARM_TEST_ROOTFS (the rootfs tar), LLAMA_SERVER, KVWARM_TEST_MODEL (as
# .ci/provision prints them), KVWARM_DEB (a built .deb; default: packaging/build-deb.sh
# builds one, and a second with a higher version for the upgrade check), HOST_TEST_DEBUG=1
# (systemd's debug log from the bad reload on, shown when the upgrade check fails).
# Needs root, systemd-nspawn and nsenter. The container shares the host's network (the
# server listens on a free loopback port) and is driven with nsenter: there is no
# system bus on the host for machinectl.
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$HERE/lib.sh"
die() { echo "SETUP: $*" >&2; echo "0 passed, 1 failed"; exit 1; }

CACHE="${KVWARM_TEST_CACHE:-$HOME/.cache/kvwarm-test}"
ROOTFS="${KVWARM_TEST_ROOTFS:-$CACHE/rootfs/bookworm-systemd.tar}"
LLAMA="${LLAMA_SERVER:-$CACHE/bin/llama-server}"
MODEL="${KVWARM_TEST_MODEL:-$CACHE/models/gemma-3-270m-q4_k_m.gguf}"
[ "$(id -u)" -eq 0 ] || die "needs root (systemd-nspawn)"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing (apt-get install systemd-container)"
[ -f "$ROOTFS" ] || die "no rootfs at $ROOTFS (run .ci/provision as root)"
[ -x "$LLAMA" ] && [ -f "$MODEL" ] || die "llama-server or the model missing (run .ci/provision)"
T_START=$(now_ms)

# ---- the packages ------------------------------------------------------------------------------
version=$(sed -n 's/.*static let string = "\([^"]*\)".*/\1/p' "$ROOT/Sources/KVWarm/Daemon/KVWarmVersion.swift")
arch=$(dpkg --print-architecture)
if [ -n "${KVWARM_DEB:-}" ]; then
  DEB=$KVWARM_DEB
  SKIP_BUILD=1 LINTIAN=0 KVWARM_DEB_VERSION="$version+hosttest1" bash "$ROOT/packaging/build-deb.sh" >/dev/null \
    || die "packaging the upgrade .deb"
else
  bash "$ROOT/packaging/build-deb.sh" || die "packaging/build-deb.sh"
  DEB="$ROOT/dist/kvwarm_${version}_${arch}.deb"
  SKIP_BUILD=1 LINTIAN=0 KVWARM_DEB_VERSION="$version+hosttest1" bash "$ROOT/packaging/build-deb.sh" >/dev/null \
    || die "packaging the upgrade .deb"
fi
DEB2="$ROOT/dist/kvwarm_${version}+hosttest1_${arch}.deb"
[ -f "$DEB" ] && [ -f "$DEB2" ] || die "no .deb at $DEB / $DEB2"

# ---- the container -----------------------------------------------------------------------------
WORK=$(mktemp -d /var/tmp/kvwarm-host.XXXXXX)
R="$WORK/root"
NS_PID=""
LEADER=""
cleanup() {
  if [ -n "$LEADER" ] && kill -0 "$LEADER" 2>/dev/null; then
    nsenter -t "$LEADER" -a systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 1 50); do kill -0 "$NS_PID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$NS_PID" 2>/dev/null || true
  fi
  # nspawn --keep-unit leaves these behind on a host without systemd
  for h in systemd unified; do for t in payload supervisor; do
    [ -d "/sys/fs/cgroup/$h/$t" ] && find "/sys/fs/cgroup/$h/$t" -depth -type d -exec rmdir {} \; 2>/dev/null
  done; done
  rm -rf /run/systemd/nspawn/propagate 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$R"
tar -xf "$ROOTFS" -C "$R" || die "extracting $ROOTFS"
PORT=$(free_port)
KEY="kvwarm-host-test-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
cp "$DEB" "$R/var/tmp/kvwarm.deb"
cp "$DEB2" "$R/var/tmp/kvwarm-upgrade.deb"
mkdir -p "$R/opt/llama" "$R/etc/llama-server" "$R/etc/systemd/system/kvwarm.service.d" "$R/etc/sysusers.d"
# llama-server as a system unit under its own user; its slot directory is shared with
# kvwarm through the group (docs/operations.md, "Slot directory permissions")
echo 'u llama-server - "llama-server" /var/lib/llama-server' >"$R/etc/sysusers.d/llama-server.conf"
printf '%s\n' "$KEY" >"$R/etc/llama-server/api_key"
cat >"$R/etc/systemd/system/llama-server.service" <<EOF
[Unit]
Description=llama-server (host test)
[Service]
User=llama-server
Group=llama-server
ExecStart=/opt/llama/llama-server -m /opt/llama/model.gguf --host 127.0.0.1 --port $PORT -np 2 -c 4096 -t 2 --swa-full --slot-save-path /var/lib/llama-server/slots --api-key-file /etc/llama-server/api_key
StateDirectory=llama-server llama-server/slots
StateDirectoryMode=2770
[Install]
WantedBy=multi-user.target
EOF
cat >"$R/etc/systemd/system/kvwarm.service.d/host-test.conf" <<'EOF'
[Unit]
StartLimitIntervalSec=0
[Service]
LoadCredential=api_key:/etc/kvwarm/api_key
SupplementaryGroups=llama-server
EOF
mkdir -p "$R/etc/kvwarm/templates"
for t in code support; do
  python3 - "$t" >"$R/etc/kvwarm/templates/$t.txt" <<'EOF'
import sys
t = sys.argv[1]
print(f"You are the {t} assistant. Follow these rules.")
for i in range(30):
    print(f"Rule {i + 1}: check every {t} detail numbered {i * 7 % 101} and explain why.")
print("\nQuestion: <{message}>")
EOF
done

systemd-nspawn -D "$R" -b --register=no --keep-unit --console=passive --system-call-filter=bpf \
  --bind-ro="$LLAMA:/opt/llama/llama-server" --bind-ro="$MODEL:/opt/llama/model.gguf" \
  </dev/null >"$WORK/nspawn.log" 2>&1 &
NS_PID=$!
for _ in $(seq 1 100); do
  LEADER=$(awk '{print $1}' "/proc/$NS_PID/task/$NS_PID/children" 2>/dev/null)
  [ -n "$LEADER" ] && break; sleep 0.05
done
[ -n "$LEADER" ] || { cat "$WORK/nspawn.log" >&2; die "systemd-nspawn did not start"; }
in_() { timeout 120 nsenter -t "$LEADER" -a "$@"; }
state=""
for _ in $(seq 1 200); do
  state=$(in_ systemctl is-system-running 2>/dev/null); [[ "$state" =~ running|degraded ]] && break; sleep 0.05
done
[[ "$state" =~ running|degraded ]] || { tail -20 "$WORK/nspawn.log" >&2; die "the container did not boot ($state)"; }
note "booted Debian 12 with systemd $(in_ systemctl --version | head -1 | cut -d' ' -f2) as PID 1 (state $state) in $(( $(now_ms) - T_START )) ms since start"
sc_() { in_ systemctl --no-pager "$@"; }
kprop() { sc_ show -p "$1" --value kvwarm.service; }
kvj() { in_ journalctl --no-pager -u kvwarm.service -o json "$@"; }
# records of the current kvwarm process matching FIELD=VALUE pairs (jq-free)
records() { kvj _PID="$(kprop MainPID)" "$@" 2>/dev/null | grep -c . ; }

in_ systemd-sysusers >/dev/null 2>&1
in_ chown root:llama-server /etc/llama-server/api_key
in_ chmod 0640 /etc/llama-server/api_key
sc_ daemon-reload
sc_ start llama-server.service || die "llama-server.service did not start"
healthy() { in_ curl -sf -H "Authorization: Bearer $KEY" "http://127.0.0.1:$PORT/health" >/dev/null; }
wait_until 60 healthy || die "llama-server not healthy: $(sc_ status llama-server 2>&1 | tail -5)"

# ---- 1. install ----------------------------------------------------------------------------------
in_ env DEBIAN_FRONTEND=noninteractive dpkg -i /var/tmp/kvwarm.deb >"$WORK/dpkg-i.log" 2>&1
check "1. dpkg -i kvwarm_${version}_${arch}.deb" grep -q "Setting up kvwarm" "$WORK/dpkg-i.log"
grep -q "Setting up kvwarm" "$WORK/dpkg-i.log" || sed 's/^/#   dpkg: /' "$WORK/dpkg-i.log" | tail -15
check "1. the kvwarm system user and group exist (sysusers)" \
  bash -c "in_() { nsenter -t $LEADER -a \"\$@\"; }; in_ getent passwd kvwarm | grep -q '/var/lib/kvwarm' && in_ getent group kvwarm"
check "1. /var/lib/kvwarm is 0700 kvwarm:kvwarm, /etc/kvwarm/templates 0755 root (tmpfiles)" \
  test "$(in_ stat -c '%a %U:%G' /var/lib/kvwarm) $(in_ stat -c '%a %U' /etc/kvwarm/templates)" = "700 kvwarm:kvwarm 755 root"
check "1. a fresh install neither enables nor starts kvwarm" \
  test "$(sc_ is-enabled kvwarm.service 2>&1) $(sc_ is-active kvwarm.service 2>&1)" = "disabled inactive"
check "1. units, catalog and examples are in place" in_ test -f /lib/systemd/system/kvwarm.service -a -f /lib/systemd/system/kvwarm@.service \
  -a -f /usr/lib/systemd/catalog/kvwarm.catalog -a -f /usr/share/doc/kvwarm/examples/llama-server.service -a -f /usr/share/doc/kvwarm/docs/operations.md

# the operator's part: the key for LoadCredential, the config
printf '%s\n' "$KEY" >"$R/etc/kvwarm/api_key"
in_ chmod 0600 /etc/kvwarm/api_key
write_config() {
  cat >"$R/etc/kvwarm/config.json" <<EOF
{"backend": {"url": "http://127.0.0.1:$PORT", "slot_save_dir": "/var/lib/llama-server/slots",
             "api_key_file": "\${CREDENTIALS_DIRECTORY}/api_key", "check_interval_seconds": 1},
 "templates": {$1}}
EOF
}
write_config '"code": "/etc/kvwarm/templates/code.txt", "support": {"path": "/etc/kvwarm/templates/support.txt", "role": "system"}'
sc_ daemon-reload

# ---- 2. start returns after the startup warm --------------------------------------------------------
T0=$(now_ms); sc_ start kvwarm.service; start_rc=$?; T1=$(now_ms)
ready_records=$(records MESSAGE_ID=df8dfef4b5fe42348de980ad5c1bf8c7)
check "2. systemctl start kvwarm returns ($((T1 - T0)) ms) with the startup warm done (ready record, 2 templates warm)" \
  bash -c "[ $start_rc -eq 0 ] && [ $ready_records -ge 1 ] && [ \"\$(nsenter -t $LEADER -a systemctl show -p StatusText --value kvwarm.service)\" = 'watching 2 templates (0 failed)' ]"
check "2. kvwarm runs as kvwarm with the credential, never as root" \
  test "$(in_ ps -o user= -p "$(kprop MainPID)") $(in_ ls /run/credentials/kvwarm.service)" = "kvwarm api_key"
check "2. kvwarm status (as root) says every template is warm" in_ kvwarm status --config /etc/kvwarm/config.json
check "3. the API key reached the server (it runs with --api-key-file): warms ok, no 401" \
  test "$(records STAGE=warm OUTCOME=ok)" -ge 2 -a "$(records REASON=unauthorized)" -eq 0
check "3. the API key is in no journal record" bash -c "! nsenter -t $LEADER -a journalctl --no-pager -o export | grep -aq '$KEY'"

# ---- 4. PartOf=: restarting llama-server restarts kvwarm, templates come back by restore ----------
PID1=$(kprop MainPID)
sc_ restart llama-server.service
wait_until 60 healthy
restarted() { [ "$(kprop MainPID)" != "$PID1" ] && [ "$(kprop MainPID)" != 0 ] && [ "$(sc_ is-active kvwarm.service)" = active ] \
  && [ "$(records MESSAGE_ID=df8dfef4b5fe42348de980ad5c1bf8c7)" -ge 1 ]; }
wait_until 60 restarted
check "4. systemctl restart llama-server restarts kvwarm (PartOf=): new MainPID, READY again" restarted
check "4. after the restart both templates are restored from their KV files" test "$(records STAGE=warm OUTCOME=ok MODE=restore)" -ge 2

# ---- 5. reload returns when it is done, fails when rejected ----------------------------------------
cp "$R/etc/kvwarm/templates/code.txt" "$R/etc/kvwarm/templates/added.txt"
sed -i 's/code assistant/added assistant/' "$R/etc/kvwarm/templates/added.txt"
write_config '"code": "/etc/kvwarm/templates/code.txt", "support": {"path": "/etc/kvwarm/templates/support.txt", "role": "system"}, "added": "/etc/kvwarm/templates/added.txt"'
PID2=$(kprop MainPID)
sc_ reload kvwarm.service; reload_rc=$?
added_now=$(records TEMPLATE=added STAGE=warm OUTCOME=ok)
check "5. systemctl reload returns with the added template already warm, same process" \
  test "$reload_rc" -eq 0 -a "$added_now" -ge 1 -a "$(kprop MainPID)" = "$PID2"
printf '{ "backend": ' >"$R/etc/kvwarm/config.json"
[ -n "${HOST_TEST_DEBUG:-}" ] && in_ systemd-analyze log-level debug
sc_ reload kvwarm.service >/dev/null 2>&1; bad_rc=$?

check "5. a rejected config fails systemctl reload (rc $bad_rc); kvwarm keeps running" \
  test "$bad_rc" -ne 0 -a "$(sc_ is-active kvwarm.service)" = active -a "$(kprop MainPID)" = "$PID2"
write_config '"code": "/etc/kvwarm/templates/code.txt", "support": {"path": "/etc/kvwarm/templates/support.txt", "role": "system"}, "added": "/etc/kvwarm/templates/added.txt"'

# ---- 6. the catalog, the sandbox ----------------------------------------------------------------------
check "6. journalctl -x -u kvwarm shows the catalog's text" \
  bash -c "nsenter -t $LEADER -a journalctl --no-pager -x -u kvwarm.service | grep -q 'Subject: kvwarm finished its startup warm and is ready'"
score=$(in_ systemd-analyze security kvwarm.service 2>/dev/null | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
check "6. systemd-analyze security on the running unit: ${score:-?} (≤ 2.0)" \
  python3 -c "import sys; sys.exit(0 if 0 < float('${score:-99}') <= 2.0 else 1)"

# ---- 7. upgrade keeps the state and restarts the unit -------------------------------------------------
PID3=$(kprop MainPID)
warmed_before=$(in_ python3 -c 'import json; print(sorted(json.load(open("/var/lib/kvwarm/state.json"))["templates"]))')
in_ env DEBIAN_FRONTEND=noninteractive dpkg -i /var/tmp/kvwarm-upgrade.deb >"$WORK/dpkg-upgrade.log" 2>&1
up() { [ "$(kprop MainPID)" != "$PID3" ] && [ "$(sc_ is-active kvwarm.service)" = active ] \
  && [ "$(records MESSAGE_ID=df8dfef4b5fe42348de980ad5c1bf8c7)" -ge 1 ]; }
wait_until 60 up
check "7. dpkg -i of ${version}+hosttest1 restarts the running kvwarm" up
if ! up; then
  sed 's/^/#   dpkg: /' "$WORK/dpkg-upgrade.log" | tail -15
  in_ sh -x /var/lib/dpkg/info/kvwarm.postinst configure "$version" 2>&1 | tail -8 | sed 's/^/#   postinst: /'
  in_ journalctl --no-pager -n 12 -o short-monotonic 2>&1 | sed 's/^/#   /'
  [ -n "${HOST_TEST_DEBUG:-}" ] && in_ journalctl --no-pager -o short-monotonic _PID=1 | grep -B12 "kvwarm.service/stop" | grep -v "PropertiesChange\|varlink" | cut -c1-200 | head -40 | sed 's/^/#   dbg: /'
fi
check "7. the upgrade kept state.json and the templates came back by restore" \
  test "$(in_ python3 -c 'import json; print(sorted(json.load(open("/var/lib/kvwarm/state.json"))["templates"]))')" = "$warmed_before" \
  -a "$(records STAGE=warm OUTCOME=ok MODE=restore)" -ge 3
check "7. the edited conffile survived the upgrade" grep -q '"added"' "$R/etc/kvwarm/config.json"

# ---- 8. purge -----------------------------------------------------------------------------------------------
in_ env DEBIAN_FRONTEND=noninteractive dpkg --purge kvwarm >"$WORK/dpkg-purge.log" 2>&1
check "8. dpkg --purge stops kvwarm and removes units, state and config" \
  bash -c "in_() { nsenter -t $LEADER -a \"\$@\"; }; [ \"\$(in_ systemctl is-active kvwarm.service)\" != active ] && ! in_ test -e /lib/systemd/system/kvwarm.service && ! in_ test -e /lib/systemd/system/kvwarm@.service && ! in_ test -e /var/lib/kvwarm && ! in_ test -e /etc/kvwarm/config.json && ! in_ test -e /usr/bin/kvwarm"
leftover=$(in_ find / -xdev \( -user kvwarm -o -group kvwarm \) -not -path '/proc/*' 2>/dev/null | head -5)
check "8. no file owned by the kvwarm user is left${leftover:+: $leftover}" test -z "$leftover"

note "total $(( ($(now_ms) - T_START) / 1000 )) s"
echo "$PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
