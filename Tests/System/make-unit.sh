#!/usr/bin/env bash
# make-unit.sh SHIPPED_UNIT BINARY CONFIG > kvwarm.service
#
# Turns packaging/kvwarm.service into the unit the system test installs in a
# systemd --user manager: ExecStart= runs BINARY with CONFIG (ExecReload= runs BINARY reload), and only the lines a
# user manager cannot apply are dropped. Everything else stays exactly as shipped.
#
# Stripped, and why:
#   User=, Group=   a user manager runs services as its own user only; the kvwarm
#                   user does not exist on a build machine (217/USER otherwise).
# Kept, although a user manager applies it differently:
#   StateDirectory=/ConfigurationDirectory= both resolve to $XDG_CONFIG_HOME/kvwarm
#   on systemd 252, so the manager logs "ConfigurationDirectory 'kvwarm' already
#   exists but the mode is different" (harmless: kvwarm gets STATE_DIRECTORY);
#   the whole sandbox (ProtectSystem=strict, ProtectHome=, PrivateTmp=,
#   SystemCallFilter=, MemoryDenyWriteExecute=, IPAddressDeny=, …) is applied,
#   because this user manager runs as root.
# Test-only settings are drop-ins written by the test, as an operator would:
#   ReadWritePaths=<slot dirs>   (the unit's own comment asks for this drop-in)
#   TimeoutStartSec=5            (check 4, slow warm)
#   WatchdogSec=2, LimitCORE=0   (check 7)
# What the environment must provide for the sandbox to work as on a real host is
# set up by systemd-user-test.sh: /run as a mount point and /run/systemd/inaccessible.
set -euo pipefail
unit=$1 bin=$2 config=$3

STRIP='^(User|Group)='

sed -E \
  -e "s|^ExecStart=.*|ExecStart=$bin run --config $config|" \
  -e "s|^ExecReload=/usr/bin/kvwarm |ExecReload=$bin |" \
  -e "/$STRIP/d" \
  "$unit"
