#!/usr/bin/env python3
"""Traffic benchmark (issue 14): do new conversations reuse their template under real traffic?

Run with the test venv's python (it needs the openai client), normally through
`.ci/bench --only traffic`:

    traffic.py --server LLAMA_SERVER --model GGUF --binary KVWARM [--baseline-binary OLD_KVWARM]
               [--rounds 5] [--templates 3] [--np auto,4] [--out results.json]

For each llama-server slot setting in --np ("auto" leaves -np out: the server's
defaults, 4 slots with unified KV and --cache-idle-slots) and each of: no
kvwarm, the baseline kvwarm, this kvwarm, it starts a fresh llama-server
(--swa-full, -c --ctx), starts kvwarm on the chat templates (role system) and
waits for READY=1, then sends the same seeded traffic through the real openai
client: every round opens one new conversation per template, then grows the
round's conversations, interleaved, by 2-4 long user turns each.

For every new conversation's first request it records the server's
timings.cache_n against the template's length in tokens (the longest common
token prefix of two conversations that differ only in their user message), and
for every request its wall time. From kvwarm's JSON log (run at debug level) it
counts warms, probes and keep-warm restores with their server-side milliseconds.
Prints a Markdown report and writes the raw figures to --out.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import KVWarm, Llama, free_port, http, text_of as bench_text_of  # noqa: E402  (the same process wrappers as the other sections)

WORDS = ("review check every function for correctness error handling naming tests security performance "
         "document the reason when a change is risky compare against the specification and list each "
         "finding with its line number severity and a concrete suggestion keep answers short precise "
         "schema field migration rollback latency budget cache eviction ownership lifetime invariant").split()


def log(msg):
    print("[traffic %s] %s" % (time.strftime("%H:%M:%S"), msg), file=sys.stderr, flush=True)


def text_of(n_words, seed, head):
    """bench.py's filler with this benchmark's vocabulary, 14 words a line."""
    return bench_text_of(n_words, seed, head, words=WORDS, per_line=14)


def Server(binary, model, slot_dir, ctx, np, log_path, extra=()):
    """bench.py's llama-server wrapper (--swa-full -t 2); np "auto" leaves -np to the server."""
    return Llama(binary, model, slot_dir, ctx, log_path,
                 extra=([] if np == "auto" else ["-np", str(np)]) + list(extra))


def kvwarm_since(kv, t0):
    with kv.lock:
        return [r for t, r in kv.records if t >= t0]


def template_tokens(url, system):
    """Tokens two conversations on this system prompt share (the template's length)."""
    toks = []
    for user in ("Alpha question here.", "Zulu other words."):
        st, o = http("POST", url + "/apply-template", {"messages": [{"role": "system", "content": system},
                                                                    {"role": "user", "content": user}]})
        st, t = http("POST", url + "/tokenize", {"content": o["prompt"], "add_special": False, "parse_special": True})
        toks.append(t["tokens"])
    n = 0
    while n < min(map(len, toks)) and toks[0][n] == toks[1][n]:
        n += 1
    return n


def make_templates(url, count, target, directory):
    names = {}
    for i in range(count):
        name = "tpl%d" % i
        words = target
        for _ in range(6):
            text = text_of(words, 7 + i, "You are assistant %s. Follow the rules below for every answer." % name)
            k = template_tokens(url, text)
            if abs(k - target) <= target * 0.02:
                break
            words = max(50, int(words * target / max(k, 1)))
        path = os.path.join(directory, name + ".txt")
        with open(path, "w") as f:
            f.write(text)
        names[name] = {"path": path, "text": text, "tokens": k}
    return names


def traffic_plan(names, rounds, seed):
    """[(round, [(template, first user turn, [later user turns])])], the same for every setup."""
    rnd = random.Random(seed)
    plan = []
    for r in range(rounds):
        convs = []
        for n in names:
            first = text_of(rnd.randint(30, 60), rnd.randrange(1 << 30), "Round %d, question for %s:" % (r, n))
            later = [text_of(rnd.randint(150, 260), rnd.randrange(1 << 30), "Follow-up %d:" % k)
                     for k in range(rnd.randint(2, 4))]
            convs.append((n, first, later))
        plan.append(convs)
    return plan


def run_traffic(client, names, plan, max_tokens):
    firsts, latencies = [], []

    later_turns = []

    def send(messages):
        t0 = time.time()
        resp = client.chat.completions.create(model="test", messages=messages, max_tokens=max_tokens,
                                              temperature=0, extra_body={"cache_prompt": True})
        latencies.append((time.time() - t0) * 1000)
        timings = (resp.model_extra or {}).get("timings") or {}
        return resp.choices[0].message.content or "", timings

    def send_later(messages, known):
        """A later turn: `known` tokens of its prompt were the previous turn's prompt and reply."""
        reply, timings = send(messages)
        later_turns.append({"cache_n": timings.get("cache_n", 0), "prompt_n": timings.get("prompt_n", 0),
                            "known": known})
        return reply, timings

    for r, convs in enumerate(plan):
        live = []
        for n, first, later in convs:
            messages = [{"role": "system", "content": names[n]["text"]}, {"role": "user", "content": first}]
            reply, timings = send(messages)
            cache_n = timings.get("cache_n", 0)
            known_after = cache_n + timings.get("prompt_n", 0) + timings.get("predicted_n", 0)
            firsts.append({"round": r, "template": n, "cache_n": cache_n, "prompt_n": timings.get("prompt_n"),
                           "template_tokens": names[n]["tokens"],
                           "reuse": min(cache_n, names[n]["tokens"]) / names[n]["tokens"]})
            messages.append({"role": "assistant", "content": reply})
            live.append([messages, list(later), known_after])
        # the round's conversations grow, interleaved
        while any(c[1] for c in live):
            for c in live:
                messages, later = c[0], c[1]
                if later:
                    messages.append({"role": "user", "content": later.pop(0)})
                    reply, t = send_later(messages, c[2])
                    c[2] = t.get("cache_n", 0) + t.get("prompt_n", 0) + t.get("predicted_n", 0)
                    messages.append({"role": "assistant", "content": reply})
    return firsts, latencies, later_turns


def kvwarm_cost(records, minutes):
    warms = [r for r in records if r.get("STAGE") == "warm" and r.get("OUTCOME") == "ok"]
    keeps = [r for r in records if r.get("STAGE") == "keep" and r.get("OUTCOME") == "ok"]
    keep_ms = sum(float(r.get("SERVER_MS", 0) or 0) for r in keeps)
    warm_ms = sum(float(r.get("DURATION_MS", 0) or 0) for r in warms)
    return {"warms": len(warms), "keep_restores": len(keeps), "keep_restore_ms": keep_ms, "warm_ms": warm_ms,
            "restores_per_min": len(keeps) / minutes if minutes else 0,
            "server_ms_per_min": (keep_ms + warm_ms) / minutes if minutes else 0}


def setup(args, work, names, plan, np, binary, label):
    import openai
    d = tempfile.mkdtemp(prefix="%s-np%s-" % (label, np), dir=work)
    slots, state = os.path.join(d, "slots"), os.path.join(d, "state")
    os.makedirs(slots)
    os.makedirs(state)
    srv = Server(args.server, args.model, slots, args.ctx, np, os.path.join(d, "llama-server.log"),
                 args.server_args.split())
    kv = None
    try:
        if binary:
            cfg = os.path.join(d, "config.json")
            with open(cfg, "w") as f:
                json.dump({"backend": {"url": srv.url, "slot_save_dir": slots, "timeout_seconds": 600},
                           "state_dir": state,
                           "templates": {n: {"path": v["path"], "endpoint": "chat", "role": "system"}
                                         for n, v in names.items()},
                           "startup": {"backend_wait_seconds": 120}}, f)
            kv = KVWarm(binary, cfg, d, log_level="debug")
            kv.wait_ready()
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="no-key", max_retries=0, timeout=600)
        t0 = time.time()
        firsts, latencies, later_turns = run_traffic(client, names, plan, args.max_tokens)
        minutes = (time.time() - t0) / 60
        cost = kvwarm_cost(kvwarm_since(kv, t0), minutes) if kv else None
        keep_log = [{k: r.get(k) for k in ("TIMESTAMP", "TEMPLATE", "MESSAGE", "SERVER_MS")}
                    for r in (kvwarm_since(kv, 0) if kv else []) if r.get("STAGE") in ("keep", "warm", "startup")]
        problems = []
        if kv:
            problems = [r.get("MESSAGE", "") for r in kvwarm_since(kv, 0) if r.get("LEVEL") in ("WARNING", "ERROR")]
    finally:
        if kv:
            kv.stop()
        srv.stop()
    hits = sum(1 for f in firsts if f["reuse"] >= 0.9)
    # a later turn's reuse: the tokens of the conversation so far that came from the cache
    later_reuse = [min(t["cache_n"], t["known"]) / t["known"] for t in later_turns if t["known"]]
    res = {"label": label, "np": np, "firsts": firsts, "hits": hits, "total": len(firsts),
           "later_turns": later_turns, "later_reuse_mean": sum(later_reuse) / max(1, len(later_reuse)),
           "prefilled_tokens": sum(f["prompt_n"] or 0 for f in firsts) + sum(t["prompt_n"] for t in later_turns),
           "latency_ms_p50": statistics.median(latencies), "requests": len(latencies),
           "minutes": minutes, "cost": cost, "warnings": problems[:10], "keep_log": keep_log}
    log("%-8s np=%-4s: %d/%d new conversations reused >= 90%% of their template; later turns reused %.0f%% of "
        "their conversation; %d tokens prefilled; request p50 %.0f ms%s" % (
        label, np, hits, len(firsts), 100 * res["later_reuse_mean"], res["prefilled_tokens"], res["latency_ms_p50"],
        "" if not cost else "; %d keep-warm restores (%.1f/min), kvwarm server time %.0f ms/min" % (
            cost["keep_restores"], cost["restores_per_min"], cost["server_ms_per_min"])))
    return res


def report(r):
    out = ["## Traffic (issue 14)", "",
           "%d templates of %s tokens (chat, role system), %d rounds; every round opens one new conversation per "
           "template and grows them, interleaved, by 2-4 user turns of 150-260 words; max_tokens %d; "
           "llama-server --swa-full -c %d; real openai client." % (
               len(r["templates"]), "/".join(str(v) for v in r["templates"].values()), r["rounds"],
               r["max_tokens"], r["ctx"]), "",
           "| slots | kvwarm | new conversations reusing ≥ 90 % of their template | mean reuse | "
           "later turns: reuse of the conversation so far | tokens prefilled | "
           "request p50 | keep-warm restores/min | kvwarm server time/min |",
           "|---|---|---|---|---|---|---|---|---|"]
    for s in r["setups"]:
        mean = sum(f["reuse"] for f in s["firsts"]) / len(s["firsts"])
        c = s["cost"]
        out.append("| %s | %s | %d/%d (%.0f %%) | %.0f %% | %.0f %% | %d | %.0f ms | %s | %s |" % (
            "defaults (-np auto)" if s["np"] == "auto" else "-np %s" % s["np"], s["label"], s["hits"], s["total"],
            100.0 * s["hits"] / s["total"], 100 * mean, 100 * s["later_reuse_mean"], s["prefilled_tokens"],
            s["latency_ms_p50"],
            "-" if not c else "%.1f" % c["restores_per_min"], "-" if not c else "%.0f ms" % c["server_ms_per_min"]))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--server", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--binary", required=True, help="kvwarm under test")
    ap.add_argument("--baseline-binary", help="kvwarm before issue 14 (its setups are skipped without it)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--templates", type=int, default=3)
    ap.add_argument("--template-tokens", type=int, default=990)
    ap.add_argument("--np", default="auto,4")
    ap.add_argument("--ctx", type=int, default=32768)
    ap.add_argument("--max-tokens", type=int, default=12)
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--only", default="none,before,now", help="which kvwarm setups: none,before,now")
    ap.add_argument("--out", default="/tmp/kvwarm-bench/traffic.json")
    ap.add_argument("--server-args", default="", help="more llama-server arguments (for example -lv 5)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (server logs) and print it")
    ap.add_argument("--report-only", metavar="JSON")
    args = ap.parse_args()
    if args.report_only:
        print(report(json.load(open(args.report_only))))
        return
    work = tempfile.mkdtemp(prefix="kvwarm-traffic-")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    tpl = os.path.join(work, "templates")
    os.makedirs(tpl)
    sized = Server(args.server, args.model, work, args.ctx, "auto", os.path.join(work, "sizing.log"))
    try:
        names = make_templates(sized.url, args.templates, args.template_tokens, tpl)
    finally:
        sized.stop()
    plan = traffic_plan(names, args.rounds, args.seed)
    r = {"templates": {n: v["tokens"] for n, v in names.items()}, "rounds": args.rounds, "ctx": args.ctx,
         "max_tokens": args.max_tokens, "date": time.strftime("%Y-%m-%d %H:%M %Z"), "setups": []}
    kinds = {"none": None, "before": args.baseline_binary, "now": args.binary}
    try:
        for np in args.np.split(","):
            for label in args.only.split(","):
                if label == "before" and not args.baseline_binary:
                    continue
                r["setups"].append(setup(args, work, names, plan, np, kinds[label], label))
                with open(args.out, "w") as f:
                    json.dump(r, f, indent=1)
    finally:
        if args.keep:
            log("work directory kept: " + work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(r))


if __name__ == "__main__":
    main()
