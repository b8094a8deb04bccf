#!/usr/bin/env bash
# Builds the reproducer and prints, for 60 s of idling, how often each of its threads woke
# and how much CPU it used: with one Task run, the dispatch manager thread wakes ~60 times a
# minute; with --no-task, nothing wakes.
set -euo pipefail
cd "$(dirname "$0")"
out="${TMPDIR:-/tmp}/dispatch_workq_monitor"
swiftc -O dispatch_workq_monitor.swift -o "$out"
secs="${1:-60}"
for mode in task --no-task; do
  "$out" $([ "$mode" = task ] || echo --no-task) > "$out.$$.log" &
  pid=$!
  until grep -q ready "$out.$$.log" 2>/dev/null; do sleep 0.05; done
  sleep 2
  snap() { for t in /proc/$pid/task/*; do echo "$(cat $t/comm)|$(awk '{print $1}' $t/schedstat)|$(awk '/^voluntary/{print $2}' $t/status)"; done | sort; }
  a="$(snap)"; sleep "$secs"; b="$(snap)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "== $mode ($secs s)"
  join -t'|' <(echo "$a") <(echo "$b") | awk -F'|' -v s="$secs" '{printf "  %-28s %6.2f ms/min  %4d wakes/min\n", $1, ($4-$2)/1e6*60/s, ($5-$3)*60/s}'
  rm -f "$out.$$.log"
done
