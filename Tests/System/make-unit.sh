#!/usr/bin/env bash
# make-unit.sh SHIPPED_UNIT BINARY CONFIG > kvwarm.service
#
# Turns packaging/kvwarm.service into the unit the system test installs in a
# systemd --user manager: ExecStart= runs BINARY with CONFIG, and only the lines a
# user manager cannot apply are dropped. Everything else stays exactly as shipped.
#
# Stripped, and why:
#   User=, Group=   a user manager runs services as its own user only; the kvwarm
#                   user does not exist on a build machine (217/USER otherwise).
# Kept, although it does less under a user manager than under PID 1:
#   StateDirectory=/ConfigurationDirectory= (resolve under $XDG_CONFIG_HOME),
#   the sandbox (ProtectSystem=strict, PrivateTmp=, SystemCallFilter=, … are all
#   applied: this user manager runs as root), IPAddressDeny=/IPAddressAllow=.
set -euo pipefail
unit=$1 bin=$2 config=$3

STRIP='^(User|Group)='

sed -E \
  -e "s|^ExecStart=.*|ExecStart=$bin run --config $config|" \
  -e "/$STRIP/d" \
  "$unit"
