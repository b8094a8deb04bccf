#!/usr/bin/env python3
"""Side-by-side medians of two kvwarm builds from bench.py results files.

    compare.py --label before --label after before-*.json vs after-*.json

Each side is a list of results files (one per section is fine); the table shows
each figure's median for both sides and the ratio after/before. Run both sides
in one sitting, alternating sections, so the machine's noise hits both alike.
"""
import argparse
import json
import statistics


def load(paths):
    merged = {}
    for p in paths:
        merged.update({k: v for k, v in json.load(open(p)).items() if k not in ("machine", "args")})
    return merged


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def figures(r):
    out = {}
    for debounce, kinds in (r.get("reaction") or {}).items():
        for kind, v in kinds.items():
            xs = v.get("warm_request_ms") or []
            if xs:
                out["reaction p50, %s, debounce %s ms (ms)" % (kind, debounce)] = statistics.median(xs)
                out["reaction p99, %s, debounce %s ms (ms)" % (kind, debounce)] = pct(xs, 99)
    b = r.get("burst") or {}
    if b.get("runs"):
        out["burst: runs with exactly 100 warms of the final content"] = sum(1 for x in b["runs"] if x["exact"])
        out["burst: last write to last warm (ms)"] = statistics.median(x["last_write_to_last_warm_ms"] for x in b["runs"])
    if b.get("startup_overhead_100"):
        out["pipeline overhead per warm, 100 templates (ms)"] = b["startup_overhead_100"]["overhead_ms_per_warm_median"]
    s = r.get("server") or {}
    if s.get("restore_s"):
        out["restart -> READY by restore, 9 templates (s)"] = statistics.median(s["restore_s"])
        out["restart -> READY / raw restore + probe"] = statistics.median(s["ratio_restore_over_raw"])
    if s.get("prefill_s"):
        out["startup prefill of 9 templates (s)"] = statistics.median(s["prefill_s"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--label", action="append", default=[])
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    cut = a.files.index("vs") if "vs" in a.files else None
    if cut is None:
        raise SystemExit("give the two sides' files separated by vs")
    left, right = figures(load(a.files[:cut])), figures(load(a.files[cut + 1:]))
    l1, l2 = (a.label + ["before", "after"])[:2]
    print("| figure | %s | %s | %s / %s |" % (l1, l2, l2, l1))
    print("|---|---|---|---|")
    for k in left:
        if k in right:
            ratio = right[k] / left[k] if left[k] else float("nan")
            print("| %s | %.2f | %.2f | %.2f |" % (k, left[k], right[k], ratio))


if __name__ == "__main__":
    main()
