#!/usr/bin/env bash
# make-instance-unit.sh > packaging/kvwarm@.service
#
# Derives the template unit kvwarm@.service (one kvwarm per llama-server@.service
# instance) from kvwarm.service, so the two never differ in anything but what an
# instance needs: the config /etc/kvwarm/%i.json, the state directory
# /var/lib/kvwarm/%i, ordering against llama-server@%i.service, that instance's
# slot directory and credential. The sandbox is the same line for line.
# Tests/System/cases.sh checks that the committed file is this script's output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

sed -E \
  -e 's|^# kvwarm: keeps llama-server.s KV cache warm for prompt-template files\.$|# kvwarm@NAME: keeps the KV cache of llama-server@NAME warm, with /etc/kvwarm/NAME.json.|' \
  -e 's|^Description=.*|Description=kvwarm for llama-server@%i: keep its KV cache warm for prompt templates|' \
  -e 's|llama-server\.service|llama-server@%i.service|g' \
  -e 's|systemctl restart llama-server"|systemctl restart llama-server@NAME"|' \
  -e 's|^ExecStart=/usr/bin/kvwarm run --config /etc/kvwarm/config\.json$|ExecStart=/usr/bin/kvwarm run --config /etc/kvwarm/%i.json|' \
  -e 's|^# /var/lib/kvwarm \(state\.json\)|# /var/lib/kvwarm/NAME (state.json)|' \
  -e 's|^StateDirectory=kvwarm$|StateDirectory=kvwarm/%i|' \
  -e 's|/etc/kvwarm/api_key|/etc/kvwarm/%i.api_key|g' \
  -e 's|in config\.json set|in NAME.json set|' \
  -e 's|\(systemctl edit kvwarm\)|(systemctl edit kvwarm@NAME)|' \
  -e 's|^ReadWritePaths=-/var/lib/llama-server/slots$|ReadWritePaths=-/var/lib/llama-server/slots -/var/lib/llama-server/%i/slots|' \
  "$here/kvwarm.service"
