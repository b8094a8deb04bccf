#!/usr/bin/env bash
# Issue 14.4: three ~1,000-token templates on the real server; llama-server restarted with the same args;
# time from /health 200 to the third "warmed by restore" record
set -e
D=${KVWARM_BENCH_DIR:-/tmp/kvwarm-restart-bench}; rm -rf $D; mkdir -p $D/{slots,state,t}
cd "$(dirname "$0")/../.."
for n in a b c; do python3 - "$n" > $D/t/$n.txt <<'PY'
import sys
n=sys.argv[1]
print("You are assistant %s. Follow these rules.\n" % n + "\n".join("Rule %d for %s: check every detail numbered %d and explain why." % (i, n, i*7%101) for i in range(62)) + "\n\n<{message}>")
PY
done
cat > $D/config.json <<J
{"backend": {"url": "http://127.0.0.1:18411", "slot_save_dir": "$D/slots"}, "state_dir": "$D/state",
 "templates": {"a": "$D/t/a.txt", "b": "$D/t/b.txt", "c": "$D/t/c.txt"}}
J
S="$HOME/.cache/kvwarm-test/bin/llama-server -m $HOME/.cache/kvwarm-test/models/gemma-3-270m-q4_k_m.gguf --port 18411 --slot-save-path $D/slots --swa-full -c 8192 -t 2"
$S > $D/s1.log 2>&1 & SP=$!
sleep 3
./.build/debug/kvwarm run --config $D/config.json --log-format json > $D/kv.log 2>&1 & KP=$!
for i in $(seq 1 120); do grep -q '"ready' $D/kv.log 2>/dev/null && break; grep -q 'ready:' $D/kv.log && break; sleep 0.5; done
for round in 1 2 3; do
  kill $SP; wait $SP 2>/dev/null || true
  sleep 2
  mark=$(wc -l < $D/kv.log)
  $S > $D/s2.log 2>&1 & SP=$!
  until curl -fs localhost:18411/health >/dev/null 2>&1; do sleep 0.05; done
  t0=$(date +%s.%N)
  until [ "$(tail -n +$((mark+1)) $D/kv.log | grep -c 'warmed by restore')" -ge 3 ]; do sleep 0.05; done
  t1=$(date +%s.%N)
  echo "round $round: all three restored $(python3 -c "print(round($t1-$t0,2))") s after /health OK"
  sleep 3
done
kill -INT $KP; kill $SP; wait 2>/dev/null || true
