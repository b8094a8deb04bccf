#!/usr/bin/env python3
"""kvwarm benchmarks (issue 6). Stdlib only. Entry point: .ci/bench.

Runs the built kvwarm binary as systemd would (NOTIFY_SOCKET bound here, JSON
logs on stderr) against Tests/Fixtures/fake_llama_server.py (reaction, burst,
idle, scale) and against the provisioned real llama-server with gemma-3-270m
(restart -> READY, first user request). Prints a Markdown report on stdout and
writes every raw figure to --out (JSON). See docs/benchmarks.md for the method.

    bench.py --binary .build/release/kvwarm [--runs 5] [--edits 200]
             [--prefill-runs 2] [--idle-windows 5] [--only reaction,burst,...]
"""

import argparse
import ctypes
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FAKE = os.path.join(REPO, "Tests", "Fixtures", "fake_llama_server.py")
SECTIONS = ["lean", "reaction", "burst", "idle", "quiet", "scale", "server", "traffic"]


def log(msg):
    sys.stderr.write("[bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg))
    sys.stderr.flush()


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def pct(xs, p):
    """Nearest-rank percentile."""
    if not xs:
        return float("nan")
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(-(-p * len(s) // 100)) - 1))
    return s[k]


def wait_for(pred, timeout, what, poll=0.005):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(poll)
    raise RuntimeError("timed out waiting for " + what)


# --------------------------------------------------------------------------
# HTTP (a new connection per call, like curl)
# --------------------------------------------------------------------------

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(method, url, body=None, timeout=600):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with NO_PROXY.open(req, timeout=timeout) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# --------------------------------------------------------------------------
# inotify (ctypes) to timestamp close-write / rename as the kernel reports it
# --------------------------------------------------------------------------

IN_CLOSE_WRITE = 0x00000008
IN_MOVED_TO = 0x00000080


class DirEvents(object):
    """Timestamps (time.time()) of IN_CLOSE_WRITE / IN_MOVED_TO per file name in one directory."""

    def __init__(self, directory):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(0)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if self.libc.inotify_add_watch(self.fd, directory.encode(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0:
            raise OSError(ctypes.get_errno(), "inotify_add_watch")
        self.lock = threading.Lock()
        self.events = []  # (t, mask, name)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except OSError:
                return
            t = time.time()
            i = 0
            while i + 16 <= len(buf):
                _wd, mask, _cookie, ln = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16:i + 16 + ln].rstrip(b"\0").decode("utf-8", "replace")
                with self.lock:
                    self.events.append((t, mask, name))
                i += 16 + ln

    def last(self, name, since):
        with self.lock:
            ts = [t for (t, _m, n) in self.events if n == name and t >= since]
        return ts[-1] if ts else None


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

class Fake(object):
    def __init__(self, slot_dir, extra=()):
        self.p = subprocess.Popen([sys.executable, FAKE, "--port", "0", "--slot-save-path", slot_dir] + list(extra),
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.p.stdout.readline().split()
        self.url = "http://127.0.0.1:%s" % line[1]

    def requests(self, since=0):
        return http("GET", self.url + "/__requests?since=%d" % since)[1]

    def count(self):
        return len(self.requests())

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()


class Llama(object):
    """The provisioned llama-server with gemma-3-270m."""

    def __init__(self, binary, model, slot_dir, ctx, log_path, extra=()):
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.logf = open(log_path, "ab")
        self.p = subprocess.Popen([binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
                                   "--slot-save-path", slot_dir, "-c", str(ctx), "-t", "2", "--swa-full"] + list(extra),
                                  stdout=self.logf, stderr=self.logf, stdin=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.p.poll() is not None:
                raise RuntimeError("llama-server exited; see " + log_path)
            try:
                if http("GET", self.url + "/health", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("llama-server not healthy")

    def stop(self):
        self.p.terminate()
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.logf.close()


class KVWarm(object):
    """`kvwarm run` with a NOTIFY_SOCKET bound here and JSON logs collected with arrival times."""

    def __init__(self, binary, config, workdir, env=None, log_level="info"):
        self.sock_path = os.path.join(workdir, "notify-%d.sock" % random.randrange(1 << 30))
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.sock_path)
        self.lock = threading.Lock()
        self.notes = []    # (t, text)
        self.records = []  # (t, dict)
        e = dict(os.environ)
        e["NOTIFY_SOCKET"] = self.sock_path
        for k in ("WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
            e.pop(k, None)
        e.update(env or {})
        self.t_spawn = time.time()
        self.p = subprocess.Popen([binary, "run", "--config", config, "--log-format", "json",
                                   "--log-level", log_level],
                                  env=e, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.pid = self.p.pid
        threading.Thread(target=self._notes, daemon=True).start()
        threading.Thread(target=self._logs, daemon=True).start()

    def _notes(self):
        while True:
            try:
                d = self.sock.recv(4096)
            except OSError:
                return
            if not d:
                return
            with self.lock:
                self.notes.append((time.time(), d.decode("utf-8", "replace")))

    def _logs(self):
        for line in self.p.stderr:
            t = time.time()
            try:
                o = json.loads(line)
            except ValueError:
                o = {"RAW": line.decode("utf-8", "replace")}
            with self.lock:
                self.records.append((t, o))

    def note_time(self, fragment):
        with self.lock:
            for t, n in self.notes:
                if fragment in n:
                    return t
        return None

    def wait_ready(self, timeout=600):
        def ready():
            if self.p.poll() is not None:
                raise RuntimeError("kvwarm exited %s: %s" % (self.p.returncode, self.tail()))
            return self.note_time("READY=1")
        return wait_for(ready, timeout, "READY=1", poll=0.02)

    def count(self, **fields):
        with self.lock:
            return sum(1 for _t, r in self.records if all(r.get(k) == v for k, v in fields.items()))

    def matching(self, **fields):
        with self.lock:
            return [r for _t, r in self.records if all(r.get(k) == v for k, v in fields.items())]

    def tail(self):
        with self.lock:
            return "\n".join(json.dumps(r) for _t, r in self.records[-20:])

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.sock.close()
        try:
            os.unlink(self.sock_path)
        except OSError:
            pass


def write_config(path, backend, templates, state_dir, slot_dir, debounce_ms=150, check_interval=5, endpoint="completion"):
    cfg = {
        "backend": {"url": backend, "slot_save_dir": slot_dir, "timeout_seconds": 600,
                    "check_interval_seconds": check_interval},
        "state_dir": state_dir,
        "debounce_ms": debounce_ms,
        "templates": {n: {"path": p, "endpoint": endpoint} for n, p in templates.items()},
        "startup": {"backend_wait_seconds": 120},
    }
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)



def workdirs(work, prefix):
    """A fresh directory under `work` with templates/, slots/ and state/; returns the four paths."""
    d = tempfile.mkdtemp(prefix=prefix, dir=work)
    tpl, slots, state = (os.path.join(d, x) for x in ("templates", "slots", "state"))
    for x in (tpl, slots, state):
        os.makedirs(x)
    return d, tpl, slots, state


def fake_setup(work, prefix, n_templates, **config):
    """`n_templates` generated templates, a fake backend and a config for them; returns
    (directory, fake, config path)."""
    d, tpl, slots, state = workdirs(work, prefix)
    names = make_templates(tpl, n_templates, 300)
    fake = Fake(slots)
    cfg = os.path.join(d, "config.json")
    write_config(cfg, fake.url, names, state, slots, **config)
    return d, fake, cfg

WORDS = ("review check every function for correctness error handling naming tests security performance "
         "document the reason when a change is risky compare against the specification and list each "
         "finding with its line number severity and a concrete suggestion keep answers short precise").split()


def text_of(n_words, seed, head="", words=None, per_line=12):
    """Seeded filler: `head`, then lines of `per_line` words drawn from `words` (default WORDS)."""
    rnd = random.Random(seed)
    words = words or WORDS
    lines, line = [head] if head else [], []
    for i in range(n_words):
        line.append(rnd.choice(words))
        if len(line) == per_line:
            lines.append(" ".join(line) + ".")
            line = []
    if line:
        lines.append(" ".join(line) + ".")
    return "\n".join(lines) + "\n"


def smaps_by_file(pid, top=8):
    """Resident KiB per mapped file (anonymous mappings as "[anon]"), largest first."""
    out, cur = {}, None
    with open("/proc/%d/smaps" % pid) as f:
        for line in f:
            parts = line.split()
            if not parts:
                continue
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                cur = os.path.basename(parts[5]) if len(parts) >= 6 else "[anon]"
            elif parts[0] == "Rss:" and cur is not None:
                out[cur] = out.get(cur, 0) + int(parts[1])
    return sorted(out.items(), key=lambda kv: -kv[1])[:top]


def thread_cpu_ns(pid):
    """Nanoseconds on CPU per live thread (/proc/<pid>/task/<tid>/schedstat, first field)."""
    out = {}
    try:
        tids = os.listdir("/proc/%d/task" % pid)
    except OSError:
        return out
    for tid in tids:
        try:
            with open("/proc/%d/task/%s/schedstat" % (pid, tid)) as f:
                out[tid] = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass
    return out


def voluntary_switches(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        out[tid] = int(line.split()[1])
        except OSError:
            pass
    return out


def proc_sample(pid):
    """CPU ticks (whole process), VmRSS/VmHWM KiB, voluntary ctx switches per live thread, rchar."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime (fields 14, 15)
    st = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            st[k] = v.strip()
    threads = voluntary_switches(pid)
    io = {}
    with open("/proc/%d/io" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            io[k] = int(v)
    return {"t": time.time(), "ticks": ticks, "rss_kib": int(st["VmRSS"].split()[0]),
            "rss_anon_kib": int(st["RssAnon"].split()[0]), "rss_file_kib": int(st["RssFile"].split()[0]),
            "hwm_kib": int(st["VmHWM"].split()[0]), "threads": threads, "rchar": io["rchar"],
            "syscr": io["syscr"]}


# --------------------------------------------------------------------------
# 7. Lean: size, startup, idle cost of 200 templates (issue 17)
# --------------------------------------------------------------------------

def memory_of(pid):
    """RSS, PSS, USS (private clean + dirty) and anonymous KiB from smaps_rollup."""
    out = {}
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                out[k] = int(v.split()[0])
    return {"rss_kib": out.get("Rss", 0), "pss_kib": out.get("Pss", 0),
            "uss_kib": out.get("Private_Clean", 0) + out.get("Private_Dirty", 0),
            "anon_kib": out.get("Anonymous", 0)}


def thread_names(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                out[tid] = f.read().strip()
        except OSError:
            pass
    return out


def lean(args, work, binary):
    """Binary size (as built and stripped), spawn -> READY with one template on the fake backend,
    and an idle window with 200 templates at the default settings (check every 5 s, systemd's
    watchdog at 60 s): CPU per thread from schedstat (threads that come and go included), wakeups,
    RSS/PSS/USS and the resident KiB by mapping."""
    res = {"size_bytes": os.path.getsize(binary)}
    stripped = os.path.join(work, "stripped-kvwarm")
    shutil.copyfile(binary, stripped)
    subprocess.run(["strip", stripped], check=True)
    res["stripped_bytes"] = os.path.getsize(stripped)
    os.unlink(stripped)
    res["ready_s"] = []
    for i in range(args.runs):
        d, fake, cfg = fake_setup(work, "lean-start-", 1)
        kv = KVWarm(binary, cfg, d)
        try:
            res["ready_s"].append(kv.wait_ready(120) - kv.t_spawn)
        finally:
            kv.stop()
            fake.stop()
    log("lean: %s bytes (%s stripped), spawn -> READY with one template %.3f s (median of %d)" % (
        res["size_bytes"], res["stripped_bytes"], median(res["ready_s"]), len(res["ready_s"])))
    d, fake, cfg = fake_setup(work, "lean-idle-", 200)
    kv = KVWarm(binary, cfg, d, env={"WATCHDOG_USEC": "60000000"})
    res["windows"] = []
    try:
        kv.wait_ready(300)
        time.sleep(10)
        for w in range(args.lean_windows):
            first = thread_cpu_ns(kv.pid)
            last = dict(first)
            sw_first = voluntary_switches(kv.pid)
            sw_last = dict(sw_first)
            names_seen = thread_names(kv.pid)
            t0 = time.time()
            while time.time() - t0 < args.idle_seconds:
                time.sleep(0.1)
                # a thread born during the window counts from zero
                for tid, v in thread_cpu_ns(kv.pid).items():
                    first.setdefault(tid, 0)
                    last[tid] = v
                for tid, v in voluntary_switches(kv.pid).items():
                    sw_first.setdefault(tid, 0)
                    sw_last[tid] = v
                names_seen.update(thread_names(kv.pid))
            secs = time.time() - t0
            per = {}
            for tid in last:
                ms = (last[tid] - first.get(tid, 0)) / 1e6 * 60 / secs
                name = names_seen.get(tid, "?")
                per[name] = per.get(name, 0) + ms
            mem = memory_of(kv.pid)
            win = {"seconds": secs, "cpu_ms": sum(per.values()), "per_thread_ms": per,
                   "wakeups": sum(sw_last[t] - sw_first[t] for t in sw_last) * 60 / secs,
                   "threads_live": len(thread_names(kv.pid)), "threads_seen": len(names_seen),
                   "smaps_top": smaps_by_file(kv.pid, top=12)}
            win.update(mem)
            res["windows"].append(win)
            log("lean idle window %d: cpu %.2f ms/min, %.0f wakeups/min, rss %.1f MiB, pss %.1f, uss %.1f, %d threads seen" % (
                w, win["cpu_ms"], win["wakeups"], mem["rss_kib"] / 1024.0, mem["pss_kib"] / 1024.0,
                mem["uss_kib"] / 1024.0, win["threads_seen"]))
    finally:
        kv.stop()
        fake.stop()
    return res


# --------------------------------------------------------------------------
# 1. Reaction
# --------------------------------------------------------------------------

def reaction(args, work, binary, debounce):
    d, tpl, slots, state = workdirs(work, "react-")
    path = os.path.join(tpl, "t.txt")
    body = text_of(300, 1)
    with open(path, "w") as f:
        f.write("marker init\n" + body)
    fake = Fake(slots)
    cfg = os.path.join(d, "config.json")
    write_config(cfg, fake.url, {"t": path}, state, slots, debounce_ms=debounce)
    kv = KVWarm(binary, cfg, d)
    out = {}
    try:
        kv.wait_ready()
        ev = DirEvents(tpl)
        for kind in ("append", "sed -i", "vim", "mv over"):
            first_req, warm_req, own = [], [], []
            for i in range(args.edits):
                marker = "marker %s %d %d" % (kind.replace(" ", "_"), debounce, i)
                n_persist = kv.count(STAGE="persist", OUTCOME="ok")
                since_req = fake.count()
                t0 = time.time()
                if kind == "append":
                    with open(path, "a") as f:
                        f.write(marker + "\n")
                elif kind == "sed -i":
                    subprocess.check_call(["sed", "-i", "1s/.*/%s/" % marker, path])
                elif kind == "vim":
                    subprocess.check_call(["vim", "-u", "NONE", "-N", "-n", "-i", "NONE", "-es",
                                           "-c", "1s/.*/%s/" % marker, "-c", "wq", path],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
                else:
                    tmp = os.path.join(tpl, ".t.txt.new")
                    with open(tmp, "w") as f:
                        f.write(marker + "\n" + body)
                    os.rename(tmp, path)
                t_done = time.time()
                wait_for(lambda: kv.count(STAGE="persist", OUTCOME="ok") > n_persist, 30, "warm after " + kind)
                te = wait_for(lambda: ev.last("t.txt", t0), 5, "inotify event")
                if kind in ("append", "mv over"):
                    te = min(te, t_done)  # our own close()/rename() returned at t_done
                reqs = fake.requests(since_req)
                comp = [r for r in reqs if r["route"] == "/completion" and marker in (r.get("body") or {}).get("prompt", "")]
                if not comp:
                    raise RuntimeError("no warm request with the new content after " + kind)
                # the pass's first request: the last GET /slots before the warm request
                pre = [r for r in reqs if r["t"] <= comp[0]["t"] and r["route"] == "/slots" and r["method"] == "GET"]
                warm_req.append((comp[0]["t"] - te) * 1000)
                if pre:
                    first_req.append((pre[-1]["t"] - te) * 1000)
                    # the same, without the fake's own time answering that GET /slots
                    own.append((comp[0]["t"] - te - (pre[-1].get("t_done", pre[-1]["t"]) - pre[-1]["t"])) * 1000)
                # let the pass finish writing state.json, then de-phase from any timer
                time.sleep(0.01 + random.random() * 0.02)
            out[kind] = {"warm_request_ms": warm_req, "first_request_ms": first_req, "backend_excluded_ms": own}
            log("reaction debounce=%d %-8s p50 %.1f p99 %.1f ms" % (debounce, kind, pct(warm_req, 50), pct(warm_req, 99)))
    finally:
        kv.stop()
        fake.stop()
    return out


# --------------------------------------------------------------------------
# 2. Burst
# --------------------------------------------------------------------------

def burst(args, work, binary):
    d, tpl, slots, state = workdirs(work, "burst-")
    names = {"b%03d" % i: os.path.join(tpl, "b%03d.txt" % i) for i in range(100)}
    body = text_of(200, 2)
    for n, p in names.items():
        with open(p, "w") as f:
            f.write("%s start\n%s" % (n, body))
    fake = Fake(slots)
    cfg = os.path.join(d, "config.json")
    write_config(cfg, fake.url, names, state, slots)
    kv = KVWarm(binary, cfg, d)
    runs = []
    try:
        kv.wait_ready()
        time.sleep(0.5)
        startup = overhead(fake.requests(), 100)
        for run in range(args.runs):
            since = fake.count()
            n_persist = kv.count(STAGE="persist", OUTCOME="ok")
            t_start = time.time()
            last_write = {}
            max_gap = 0.0
            for rnd in range(10):
                for n, p in names.items():
                    with open(p, "w") as f:
                        f.write("%s run %d round %d\n%s" % (n, run, rnd, body))
                    now = time.time()
                    if n in last_write:
                        max_gap = max(max_gap, now - last_write[n])
                    last_write[n] = now
                # ten rounds spread over one second
                time.sleep(max(0.0, t_start + (rnd + 1) * 0.1 - time.time() - 0.005))
            t_last = time.time()
            wait_for(lambda: kv.count(STAGE="persist", OUTCOME="ok") >= n_persist + 100, 60, "100 warms")
            # intermediate warms (when a file rested for a debounce) also count as
            # persisted: wait until every template's final content reached the backend
            final_marker = "run %d round 9" % run
            wait_for(lambda: len(set(r["body"]["prompt"].split(" ", 1)[0] for r in fake.requests(since)
                                     if r["route"] == "/completion" and final_marker in r["body"]["prompt"])) >= 100,
                     60, "final content of every template", poll=0.05)
            time.sleep(1.0)  # anything extra would show up here
            reqs = fake.requests(since)
            comp = [r for r in reqs if r["route"] == "/completion"]
            final = [r for r in comp if ("run %d round 9" % run) in r["body"]["prompt"]]
            per_tpl = {}
            for r in final:
                k = r["body"]["prompt"].split(" ", 1)[0]
                per_tpl[k] = per_tpl.get(k, 0) + 1
            ok = len(comp) == 100 and len(final) == 100 and len(per_tpl) == 100
            saves = [r for r in reqs if r["route"].startswith("/slots/") and r["query"].get("action") == "save"]
            r = {"writes_s": t_last - t_start, "max_gap_ms": max_gap * 1000, "warms": len(comp), "final_content": len(final),
                 "templates": len(per_tpl), "exact": ok,
                 "last_write_to_last_warm_ms": (max(x["t"] for x in comp) - t_last) * 1000,
                 "last_write_to_last_save_done_ms": (max(x.get("t_done", x["t"]) for x in saves) - t_last) * 1000}
            runs.append(r)
            log("burst run %d: %d warms (%d final), last write -> last warm %.0f ms, max gap between writes of a file %.0f ms" % (
                run, r["warms"], r["final_content"], r["last_write_to_last_warm_ms"], r["max_gap_ms"]))
    finally:
        kv.stop()
        fake.stop()
    return {"runs": runs, "startup_overhead_100": startup}


def overhead(reqs, n_templates):
    """Pipeline overhead per warm during a startup warm, from the fake's timestamps:
    sum of (arrival of a request - response written of the previous one) from the
    first GET /slots of the warm to the last save, divided by the warms."""
    reqs = [r for r in reqs if "t_done" in r]
    i0 = next(i for i, r in enumerate(reqs) if r["route"] == "/slots" and r["method"] == "GET")
    saves = [i for i, r in enumerate(reqs) if r["route"].startswith("/slots/") and r["query"].get("action") == "save"]
    seq = reqs[i0:saves[n_templates - 1] + 1]
    gaps = [max(0.0, seq[k]["t"] - seq[k - 1]["t_done"]) for k in range(1, len(seq))]
    backend = sum(r["t_done"] - r["t"] for r in seq)
    total = seq[-1]["t_done"] - seq[0]["t"]
    per_pass = []
    # gaps grouped per warm: each warm ends with its save
    start = 0
    for k, r in enumerate(seq):
        if r["route"].startswith("/slots/") and r["query"].get("action") == "save":
            g = [max(0.0, seq[j]["t"] - seq[j - 1]["t_done"]) for j in range(max(start, 1), k + 1)]
            per_pass.append(sum(g) * 1000)
            start = k + 1
    kinds = {}
    for k in range(1, len(seq)):
        a, b = seq[k - 1], seq[k]
        key = "%s %s -> %s %s" % (a["method"], a["route"] if "action" not in a["query"] else "save",
                                  b["method"], b["route"] if "action" not in b["query"] else "save")
        kinds.setdefault(key, []).append(max(0.0, b["t"] - a["t_done"]) * 1000)
    return {"gaps_ms_median": {k: median(v) for k, v in kinds.items()},
            "warms": n_templates, "requests": len(seq), "total_ms": total * 1000, "backend_ms": backend * 1000,
            "overhead_ms_per_warm": sum(gaps) * 1000 / n_templates,
            "overhead_ms_per_warm_median": median(per_pass), "overhead_ms_per_warm_p99": pct(per_pass, 99)}


# --------------------------------------------------------------------------
# 5. Idle and 6. scale (fake backend)
# --------------------------------------------------------------------------

def make_templates(tpl, n, words, prefix="t"):
    body = text_of(words, 3)
    names = {}
    for i in range(n):
        p = os.path.join(tpl, "%s%05d.txt" % (prefix, i))
        with open(p, "w") as f:
            f.write("%s%05d\n%s" % (prefix, i, body))
        names["%s%05d" % (prefix, i)] = p
    return names


def idle(args, work, binary, watchdog, check_interval, windows):
    d, fake, cfg = fake_setup(work, "idle-", 1000, check_interval=check_interval)
    env = {"WATCHDOG_USEC": "60000000"} if watchdog else {}
    kv = KVWarm(binary, cfg, d, env=env)
    res = {"watchdog_usec": 60000000 if watchdog else None, "check_interval_s": check_interval, "windows": []}
    try:
        t_ready = kv.wait_ready(900)
        res["startup_ready_s"] = t_ready - kv.t_spawn
        res["startup_overhead_1000"] = overhead(fake.requests(), 1000)
        log("idle: 1000 templates READY after %.1f s; overhead/warm %.2f ms" % (
            res["startup_ready_s"], res["startup_overhead_1000"]["overhead_ms_per_warm"]))
        time.sleep(5)
        for w in range(windows):
            n_req = fake.count()
            n_notes = len(kv.notes)
            a = proc_sample(kv.pid)
            seen = {}  # tid -> (first, last) voluntary switches, threads seen while polling
            for tid, v in a["threads"].items():
                seen[tid] = [v, v]
            # tid -> (first, last) ns on CPU: /proc/<pid>/stat counts in 10 ms ticks, too coarse
            # for a few ms a minute; schedstat counts nanoseconds, per thread
            ns_seen = {tid: [v, v] for tid, v in thread_cpu_ns(kv.pid).items()}
            end = a["t"] + args.idle_seconds
            while time.time() < end:
                time.sleep(0.02)
                for tid, v in thread_cpu_ns(kv.pid).items():
                    if tid in ns_seen:
                        ns_seen[tid][1] = v
                    else:
                        ns_seen[tid] = [0, v]
                try:
                    for tid, v in voluntary_switches(kv.pid).items():
                        if tid in seen:
                            seen[tid][1] = v
                        else:
                            seen[tid] = [0, v]
                except OSError:
                    pass
            b = proc_sample(kv.pid)
            for tid, v in b["threads"].items():
                if tid in seen:
                    seen[tid][1] = v
            secs = b["t"] - a["t"]
            hz = os.sysconf("SC_CLK_TCK")
            reqs = fake.requests(n_req)
            with kv.lock:
                notes = [n for _t, n in kv.notes[n_notes:]]
            for tid, v in thread_cpu_ns(kv.pid).items():
                if tid in ns_seen:
                    ns_seen[tid][1] = v
            win = {"seconds": secs, "cpu_ms": (b["ticks"] - a["ticks"]) * 1000.0 / hz * 60 / secs,
                   "cpu_ns_ms": sum(l - f for f, l in ns_seen.values()) / 1e6 * 60 / secs,
                   "per_thread_cpu_ms": {tid: (l - f) / 1e6 * 60 / secs for tid, (f, l) in ns_seen.items() if l - f},
                   "rss_kib": b["rss_kib"], "hwm_kib": b["hwm_kib"],
                   "wakeups": sum(l - f for f, l in seen.values()) * 60 / secs,
                   "threads_live": len(b["threads"]), "threads_seen": len(seen),
                   "backend_requests": len(reqs) * 60 / secs,
                   "backend_routes": sorted(set(r["route"] for r in reqs)),
                   "notify": len(notes) * 60 / secs, "watchdog_pings": sum(1 for n in notes if "WATCHDOG=1" in n),
                   "rchar_per_min": (b["rchar"] - a["rchar"]) * 60 / secs,
                   "read_syscalls_per_min": (b["syscr"] - a["syscr"]) * 60 / secs,
                   "per_thread_wakeups": {tid: l - f for tid, (f, l) in seen.items() if l - f}}
            win["rss_anon_kib"], win["rss_file_kib"] = b["rss_anon_kib"], b["rss_file_kib"]
            win["smaps_top"] = smaps_by_file(kv.pid)
            res["windows"].append(win)
            log("idle window %d (watchdog=%s check=%ss): cpu %.1f ms/min (schedstat %.2f), rss %.1f MiB, wakeups %.0f/min, %d requests" % (
                w, watchdog, check_interval, win["cpu_ms"], win["cpu_ns_ms"], win["rss_kib"] / 1024.0, win["wakeups"], len(reqs)))
    finally:
        kv.stop()
        fake.stop()
    return res


def scale(args, work, binary):
    d, tpl, slots, state = workdirs(work, "scale-")
    names = make_templates(tpl, 10000, 300)
    total_bytes = sum(os.path.getsize(p) for p in names.values())
    fake = Fake(slots)
    cfg = os.path.join(d, "config.json")
    write_config(cfg, fake.url, names, state, slots)
    res = {"templates": 10000, "bytes": total_bytes, "check_s": [], "start_to_first_warm_s": [],
           "start_to_first_request_s": []}
    try:
        for run in range(args.runs):
            t0 = time.time()
            p = subprocess.run([binary, "check", "--config", cfg], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            dt = time.time() - t0
            okc = p.stdout.count(b"ok, ")
            if p.returncode != 0 or okc < 10000:
                raise RuntimeError("kvwarm check failed (%d ok): %s" % (okc, p.stderr[-500:]))
            res["check_s"].append(dt)
            http("POST", fake.url + "/__reset", {"log": True})
            kv = KVWarm(binary, cfg, d)
            try:
                first = wait_for(lambda: [r for r in fake.requests() if r["route"] == "/completion"], 120,
                                 "first warm", poll=0.002)[0]
                anyreq = fake.requests()[0]
                res["start_to_first_warm_s"].append(first["t"] - kv.t_spawn)
                res["start_to_first_request_s"].append(anyreq["t"] - kv.t_spawn)
            finally:
                kv.stop()
            shutil.rmtree(state)
            os.makedirs(state)
            log("scale run %d: check %.3f s, start -> first warm request %.3f s" % (
                run, dt, res["start_to_first_warm_s"][-1]))
    finally:
        fake.stop()
    return res


# --------------------------------------------------------------------------
# 3. Restart -> READY and 4. first user request (real llama-server)
# --------------------------------------------------------------------------

def server_section(args, work, binary):
    server = os.environ.get("LLAMA_SERVER", os.path.expanduser("~/.cache/kvwarm-test/bin/llama-server"))
    model = os.environ.get("KVWARM_TEST_MODEL", os.path.expanduser("~/.cache/kvwarm-test/models/gemma-3-270m-q4_k_m.gguf"))
    d, tpl, slots, state = workdirs(work, "server-")
    llog = os.path.join(d, "llama-server.log")
    start = lambda: Llama(server, model, slots, args.ctx, llog)

    # templates sized with the server's own tokenizer
    srv = start()
    names, tokens = {}, {}
    try:
        for i, target in enumerate([1100] * 6 + [3000] * 3):
            n = "s%d" % i
            words = target
            for _ in range(6):
                text = text_of(words, 100 + i, head="Template %s. You are a careful code reviewer." % n)
                k = len(http("POST", srv.url + "/tokenize", {"content": text, "add_special": True})[1]["tokens"])
                if abs(k - target) <= target * 0.02:
                    break
                words = int(words * target / k)
            p = os.path.join(tpl, n + ".txt")
            with open(p, "w") as f:
                f.write(text)
            names[n], tokens[n] = p, k
    finally:
        srv.stop()
    texts = {n: open(p).read() for n, p in names.items()}
    log("server: templates of %s tokens" % sorted(tokens.values()))
    cfg = os.path.join(d, "config.json")
    question = "\n\nQuestion: is the function above thread safe? Answer yes or no."
    asked = ["s0", "s5", "s8"]

    def user_requests(url):
        out = []
        for n in asked:
            t0 = time.time()
            st, o = http("POST", url + "/completion", {"prompt": texts[n] + question, "n_predict": 1,
                                                       "cache_prompt": True, "temperature": 0})
            out.append({"template": n, "ms": (time.time() - t0) * 1000, "cache_n": o["timings"]["cache_n"],
                        "prompt_n": o["timings"]["prompt_n"], "prompt_ms": o["timings"]["prompt_ms"]})
        return out

    def kvwarm_start(state_dir):
        write_config(cfg, srv.url, names, state_dir, slots)
        kv = KVWarm(binary, cfg, d)
        try:
            t = kv.wait_ready(900) - kv.t_spawn
            modes = [r.get("MODE") for r in kv.matching(STAGE="warm", OUTCOME="ok")]
            return t, modes, kv
        except Exception:
            kv.stop()
            raise

    res = {"tokens": tokens, "ctx": args.ctx, "prefill_s": [], "restore_s": [], "raw_s": [], "raw_calls": [],
           "ratio_prefill_over_restore": [], "ratio_restore_over_raw": [],
           "user_cold": [], "user_raw": [], "user_kvwarm": []}
    restore_state = os.path.join(d, "state-restore")
    try:
        for run in range(args.runs):
            # forced-prefill start: empty state (fewer runs: each prefills ~15,600 tokens)
            if run < args.prefill_runs or not os.path.exists(restore_state):
                shutil.rmtree(state, ignore_errors=True)
                os.makedirs(state)
                srv = start()
                try:
                    t, modes, kv = kvwarm_start(state)
                    kv.stop()
                finally:
                    srv.stop()
                if modes.count("prefill") != 9:
                    raise RuntimeError("prefill start: modes %s" % modes)
                res["prefill_s"].append(t)
                shutil.rmtree(restore_state, ignore_errors=True)
                shutil.copytree(state, restore_state)
                log("server run %d: prefill start -> READY %.2f s" % (run, t))
                prefill_t = t
            else:
                prefill_t = None

            # kvwarm restore path on a freshly started server, then the user's requests
            run_state = os.path.join(d, "state-run")
            shutil.rmtree(run_state, ignore_errors=True)
            shutil.copytree(restore_state, run_state)
            srv = start()
            try:
                t_restore, modes, kv = kvwarm_start(run_state)
                kv.stop()  # kvwarm's work is done; requests below meet only the server
                if modes.count("restore") != 9:
                    raise RuntimeError("restore start: modes %s\n%s" % (modes, kv.tail()))
                res["user_kvwarm"].append(user_requests(srv.url))
            finally:
                srv.stop()
            res["restore_s"].append(t_restore)

            # raw restore + probe calls made directly, the same files, on a fresh server
            st = json.load(open(os.path.join(restore_state, "state.json")))
            files = {n: r["kv_file"] if "kv_file" in r else r.get("kvFile") for n, r in st["templates"].items()}
            srv = start()
            try:
                n_slots = len(http("GET", srv.url + "/slots")[1])
                calls = []
                t0 = time.time()
                for i, n in enumerate(sorted(names)):
                    slot = i % n_slots
                    a = time.time()
                    s1, _ = http("POST", srv.url + "/slots/%d?action=restore" % slot, {"filename": files[n]})
                    b = time.time()
                    s2, o = http("POST", srv.url + "/completion", {"prompt": texts[n], "n_predict": 1,
                                                                  "cache_prompt": True, "id_slot": slot,
                                                                  "temperature": 0})
                    c = time.time()
                    if s1 != 200 or s2 != 200:
                        raise RuntimeError("raw restore/probe failed: %s %s" % (s1, s2))
                    calls.append({"template": n, "restore_ms": (b - a) * 1000, "probe_ms": (c - b) * 1000,
                                  "cache_n": o["timings"]["cache_n"], "prompt_n": o["timings"]["prompt_n"]})
                raw = time.time() - t0
                res["user_raw"].append(user_requests(srv.url))
            finally:
                srv.stop()
            res["raw_s"].append(raw)
            res["raw_calls"].append(calls)

            # cold: a fresh server, the same user requests
            srv = start()
            try:
                res["user_cold"].append(user_requests(srv.url))
            finally:
                srv.stop()

            res["ratio_restore_over_raw"].append(t_restore / raw)
            if prefill_t:
                res["ratio_prefill_over_restore"].append(prefill_t / t_restore)
            cold = sum(x["ms"] for x in res["user_cold"][-1])
            rw = sum(x["ms"] for x in res["user_raw"][-1])
            kw = sum(x["ms"] for x in res["user_kvwarm"][-1])
            log("server run %d: restore start %.3f s, raw sum %.3f s (x%.2f); user requests cold %.0f raw-warm %.0f kvwarm-warm %.0f ms" % (
                run, t_restore, raw, t_restore / raw, cold, rw, kw))
    finally:
        pass
    return res


def traffic_section(args, binary):
    """Tests/Benchmarks/traffic.py (needs the openai venv): no kvwarm, the baseline, this build."""
    python = os.environ.get("KVWARM_TEST_PYTHON", os.path.expanduser("~/.cache/kvwarm-test/venv/bin/python"))
    server = os.environ.get("LLAMA_SERVER", os.path.expanduser("~/.cache/kvwarm-test/bin/llama-server"))
    model = os.environ.get("KVWARM_TEST_MODEL", os.path.expanduser("~/.cache/kvwarm-test/models/gemma-3-270m-q4_k_m.gguf"))
    out = os.path.join(os.path.dirname(os.path.abspath(args.out)), "traffic.json")
    cmd = [python, os.path.join(REPO, "Tests", "Benchmarks", "traffic.py"), "--server", server, "--model", model,
           "--binary", binary, "--rounds", str(args.traffic_rounds), "--out", out]
    if args.baseline_binary:
        cmd += ["--baseline-binary", os.path.abspath(args.baseline_binary)]
    log("traffic: " + " ".join(cmd))
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.load(open(out))


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------

def machine():
    cpu = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        mem = "%.1f GiB" % (int(open("/proc/meminfo").readline().split()[1]) / 1048576.0)
    except OSError:
        pass
    def out(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    os_name = "?"
    try:
        for line in open("/etc/os-release"):
            if line.startswith("PRETTY_NAME="):
                os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "os": os_name, "kernel": platform.release(),
            "swift": out(["swift", "--version"]), "python": platform.python_version(),
            "vim": out(["vim", "--version"]), "sed": out(["sed", "--version"]),
            "git": out(["git", "-C", REPO, "rev-parse", "--short", "HEAD"]),
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def fmt(x, d=1):
    return ("%%.%df" % d) % x


def headline(r):
    """The figures compared before and after: (label, value, digits)."""
    out = []
    x = r.get("lean")
    if x:
        ws = x["windows"]
        out += [("binary size, as built (MB)", x["size_bytes"] / 1e6, 1),
                ("binary size, stripped (MB)", x["stripped_bytes"] / 1e6, 1),
                ("spawn -> READY, one template, fake backend (s, median)", median(x["ready_s"]), 3)]
        if ws:
            out += [("idle, 200 templates, defaults: CPU ms/min (median of windows)", median([w["cpu_ms"] for w in ws]), 2),
                    ("idle, 200 templates: wakeups/min (median)", median([w["wakeups"] for w in ws]), 0),
                    ("idle, 200 templates: RSS MiB (last window)", ws[-1]["rss_kib"] / 1024.0, 1),
                    ("idle, 200 templates: PSS MiB", ws[-1]["pss_kib"] / 1024.0, 1),
                    ("idle, 200 templates: USS MiB (private pages)", ws[-1]["uss_kib"] / 1024.0, 1),
                    ("idle, 200 templates: anonymous MiB", ws[-1]["anon_kib"] / 1024.0, 1),
                    ("idle, 200 templates: threads seen in a window", ws[-1]["threads_seen"], 0)]
    if "reaction" in r and "150" in r["reaction"]:
        for kind, v in r["reaction"]["150"].items():
            out += [("reaction, debounce 150, %s: p50 ms" % kind, pct(v["warm_request_ms"], 50), 1),
                    ("reaction, debounce 150, %s: p99 ms" % kind, pct(v["warm_request_ms"], 99), 1)]
    if "burst" in r:
        out.append(("burst: last write -> last warm request ms (median)",
                    median([x["last_write_to_last_warm_ms"] for x in r["burst"]["runs"]]), 1))
        o = r["burst"].get("startup_overhead_100")
        if o:
            out.append(("pipeline overhead per warm, startup of 100 templates (ms)", o["overhead_ms_per_warm"], 2))
    d = (r.get("idle") or {}).get("defaults")
    if d and d["windows"]:
        # the first window can still hold the tail of the startup warm of 1,000 templates
        settled = d["windows"][1:] or d["windows"]
        out += [("idle, 1,000 templates, defaults: CPU ms/min (schedstat median, windows after the first)",
                 median([w["cpu_ns_ms"] for w in settled]), 2),
                ("idle, 1,000 templates: RSS MiB", d["windows"][-1]["rss_kib"] / 1024.0, 1)]
    q = (r.get("idle") or {}).get("no watchdog, check 3600 s")
    if q and q["windows"]:
        settled = q["windows"][1:] or q["windows"]
        out.append(("idle, 1,000 templates, no watchdog, check 3600 s: CPU ms/min (windows after the first)",
                    median([w["cpu_ns_ms"] for w in settled]), 2))
    if "server" in r:
        out.append(("llama-server restart: kvwarm restore start -> READY (s, median)", median(r["server"]["restore_s"]), 3))
        out.append(("restore / raw restore + probe (median)", median(r["server"]["ratio_restore_over_raw"]), 2))
    return out


def lean_report(r):
    L = ["### 7. Lean sidecar: size, startup, idle cost (release build, static Swift runtime)", ""]
    after = dict((k, (v, d)) for k, v, d in headline(r))
    before = dict((k, (v, d)) for k, v, d in headline(r.get("before", {})))
    if before:
        L.append("Before: `%s`; after: `%s`. Each section ran for both, back to back." % (r.get("before_binary"), r["binary"]))
        L.append("")
        L.append("| figure | before | after | after / before |")
        L.append("|---|---|---|---|")
        for k, (v, d) in after.items():
            if k in before:
                b = before[k][0]
                L.append("| %s | %s | %s | %s |" % (k, fmt(b, d), fmt(v, d), fmt(v / b, 2) if b else "-"))
    else:
        L.append("| figure | value |")
        L.append("|---|---|")
        for k, (v, d) in after.items():
            L.append("| %s | %s |" % (k, fmt(v, d)))
    L.append("")
    for label, res in (("before", r.get("before", {}).get("lean")), ("after", r.get("lean"))):
        if res and res["windows"]:
            w = res["windows"][-1]
            L.append("CPU ms/min by thread (%s, last window): %s." % (label, ", ".join(
                "%s %.2f" % (n, ms) for n, ms in sorted(w["per_thread_ms"].items(), key=lambda kv: -kv[1]) if ms >= 0.01)))
            L.append("")
            L.append("Resident KiB by mapping (%s): %s." % (label, ", ".join("%s %d" % (n, k) for n, k in w["smaps_top"])))
            L.append("")
    return L


def report(r):
    L = []
    m = r["machine"]
    L.append("Machine: %s, %s cores, %s, %s, kernel %s. %s. Python %s. kvwarm %s (%s build, commit %s)." % (
        m["cpu"], m["cores"], m["memory"], m["os"], m["kernel"], m["swift"], m["python"], r["binary"], r["build"], m["git"]))
    L.append("Load average at start %s, at end %s. Date %s." % (" ".join(m["loadavg_start"]),
                                                                " ".join(r.get("loadavg_end", [])), r["date"]))
    L.append("")
    if "reaction" in r:
        L.append("### 1. Reaction (close-write / rename -> warm request at the backend)")
        L.append("")
        L.append("| debounce_ms | edit | n | p50 ms | p99 ms | max ms | goal p99 <= | met | first request (GET /slots) p50 / p99 ms | without the fake's /slots time p50 / p99 ms |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for deb, kinds in sorted(r["reaction"].items(), key=lambda kv: -int(kv[0])):
            for kind, v in kinds.items():
                w, f, o = v["warm_request_ms"], v["first_request_ms"], v.get("backend_excluded_ms", [])
                goal = int(deb) + 5
                L.append("| %s | %s | %d | %s | %s | %s | %d | %s | %s / %s | %s / %s |" % (
                    deb, kind, len(w), fmt(pct(w, 50)), fmt(pct(w, 99)), fmt(max(w)), goal,
                    "yes" if pct(w, 99) <= goal else "**no**", fmt(pct(f, 50)), fmt(pct(f, 99)),
                    fmt(pct(o, 50)), fmt(pct(o, 99))))
        L.append("")
    if "burst" in r:
        b = r["burst"]
        L.append("### 2. Burst (100 templates x 10 rewrites within one second)")
        L.append("")
        L.append("| run | writes took s | longest gap between two writes of a file ms | warms | of final content | exactly 100, final | last write -> last warm request ms | -> last save done ms |")
        L.append("|---|---|---|---|---|---|---|---|")
        for i, x in enumerate(b["runs"]):
            L.append("| %d | %s | %s | %d | %d | %s | %s | %s |" % (i + 1, fmt(x["writes_s"], 3), fmt(x.get("max_gap_ms", float("nan")), 0), x["warms"], x["final_content"],
                                                       "yes" if x["exact"] else "**no**",
                                                       fmt(x["last_write_to_last_warm_ms"]), fmt(x["last_write_to_last_save_done_ms"])))
        L.append("| **median** | | | | | | **%s** | **%s** |" % (
            fmt(median([x["last_write_to_last_warm_ms"] for x in b["runs"]])),
            fmt(median([x["last_write_to_last_save_done_ms"] for x in b["runs"]]))))
        L.append("")
    if "server" in r:
        s = r["server"]
        L.append("### 3. Restart -> READY on llama-server + gemma-3-270m (-c %d --swa-full -t 2)" % s["ctx"])
        L.append("")
        L.append("Templates: %s tokens." % ", ".join(str(s["tokens"][k]) for k in sorted(s["tokens"])))
        L.append("")
        L.append("| figure | runs | median | values |")
        L.append("|---|---|---|---|")
        L.append("| forced-prefill start -> READY (s) | %d | %s | %s |" % (len(s["prefill_s"]), fmt(median(s["prefill_s"]), 2), ", ".join(fmt(x, 2) for x in s["prefill_s"])))
        L.append("| kvwarm restore start -> READY (s) | %d | %s | %s |" % (len(s["restore_s"]), fmt(median(s["restore_s"]), 3), ", ".join(fmt(x, 3) for x in s["restore_s"])))
        L.append("| raw restore + probe, sum of 9 (s) | %d | %s | %s |" % (len(s["raw_s"]), fmt(median(s["raw_s"]), 3), ", ".join(fmt(x, 3) for x in s["raw_s"])))
        rp = s["ratio_prefill_over_restore"]
        rr = s["ratio_restore_over_raw"]
        L.append("| prefill / restore, same round (goal >= 40) | %d | %s | %s |" % (len(rp), fmt(median(rp)), ", ".join(fmt(x) for x in rp)))
        L.append("| kvwarm restore / raw sum, same round (goal <= 1.5) | %d | %s | %s |" % (len(rr), fmt(median(rr), 2), ", ".join(fmt(x, 2) for x in rr)))
        L.append("")
        L.append("### 4. First user request (prompt = template + question, /completion, n_predict 1)")
        L.append("")
        rows = []
        for i in range(len(s["user_cold"])):
            c = sum(x["ms"] for x in s["user_cold"][i])
            w = sum(x["ms"] for x in s["user_raw"][i])
            k = sum(x["ms"] for x in s["user_kvwarm"][i])
            rows.append((c, w, k, (c / k) / (c / w), (c - k) / (c - w)))
        L.append("Per round: the sum over templates %s of the client-side time of one request each." % ", ".join(
            x["template"] for x in s["user_cold"][0]) if s["user_cold"] else "")
        L.append("")
        L.append("| round | cold ms | raw-warmed ms | kvwarm-warmed ms | raw speed-up | kvwarm speed-up | kept (speed-up ratio) | kept (time saved) |")
        L.append("|---|---|---|---|---|---|---|---|")
        for i, (c, w, k, kept, saved) in enumerate(rows):
            L.append("| %d | %s | %s | %s | %s | %s | %s | %s |" % (i + 1, fmt(c, 0), fmt(w, 0), fmt(k, 0), fmt(c / w), fmt(c / k),
                                                               "%.0f%%" % (kept * 100), "%.0f%%" % (saved * 100)))
        if rows:
            L.append("| **median** | %s | %s | %s | %s | %s | **%.0f%%** | %.0f%% |" % (
                fmt(median([x[0] for x in rows]), 0), fmt(median([x[1] for x in rows]), 0), fmt(median([x[2] for x in rows]), 0),
                fmt(median([x[0] / x[1] for x in rows])), fmt(median([x[0] / x[2] for x in rows])),
                median([x[3] for x in rows]) * 100, median([x[4] for x in rows]) * 100))
        L.append("")
    if "idle" in r:
        L.append("### 5. Idle (1,000 templates, nothing happening)")
        L.append("")
        L.append("| setting | windows x s | CPU ms/min from schedstat (median, max) | CPU ms/min from /proc stat ticks (median, all windows together) | RSS MiB (end): total, anon, file | VmHWM MiB | wakeups/min (median) | backend requests/min | watchdog pings/min | bytes read/min |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for key, x in r["idle"].items():
            ws = x["windows"]
            if not ws:
                continue
            ns = [w["cpu_ns_ms"] for w in ws if "cpu_ns_ms" in w]
            L.append("| %s | %d x %.0f | %s | %s, %s | %s | %s | %s | %s | %s | %s |" % (
                key, len(ws), median([w["seconds"] for w in ws]),
                "%s, %s" % (fmt(median(ns), 2), fmt(max(ns), 2)) if ns else "-",
                fmt(median([w["cpu_ms"] for w in ws])),
                fmt(sum(w["cpu_ms"] * w["seconds"] for w in ws) / sum(w["seconds"] for w in ws)),
                "%s, %s, %s" % (fmt(ws[-1]["rss_kib"] / 1024.0), fmt(ws[-1].get("rss_anon_kib", 0) / 1024.0),
                                fmt(ws[-1].get("rss_file_kib", 0) / 1024.0)),
                fmt(max(w["hwm_kib"] for w in ws) / 1024.0),
                fmt(median([w["wakeups"] for w in ws]), 0), fmt(median([w["backend_requests"] for w in ws]), 0),
                fmt(median([w["watchdog_pings"] * 60 / w["seconds"] for w in ws])),
                fmt(median([w["rchar_per_min"] for w in ws]), 0)))
        L.append("")
        for key, x in r["idle"].items():
            if x["windows"] and x["windows"][-1].get("smaps_top"):
                L.append("Resident KiB by mapping (%s, end): %s." % (key, ", ".join(
                    "%s %d" % (n, k) for n, k in x["windows"][-1]["smaps_top"])))
        L.append("")
    if "scale" in r:
        x = r["scale"]
        L.append("### 6. Scale")
        L.append("")
        L.append("| figure | runs | median | values | goal |")
        L.append("|---|---|---|---|---|")
        L.append("| `kvwarm check` of 10,000 templates (%.1f MB): load + read + hash (s) | %d | %s | %s | <= 1 s |" % (
            x["bytes"] / 1e6, len(x["check_s"]), fmt(median(x["check_s"]), 3), ", ".join(fmt(v, 3) for v in x["check_s"])))
        L.append("| `kvwarm run`, 10,000 templates: start -> first backend request (s) | %d | %s | %s | |" % (
            len(x["start_to_first_request_s"]), fmt(median(x["start_to_first_request_s"]), 3), ", ".join(fmt(v, 3) for v in x["start_to_first_request_s"])))
        L.append("| `kvwarm run`, 10,000 templates: start -> first warm request (s) | %d | %s | %s | |" % (
            len(x["start_to_first_warm_s"]), fmt(median(x["start_to_first_warm_s"]), 3), ", ".join(fmt(v, 3) for v in x["start_to_first_warm_s"])))
        for label, o in (("100", r.get("burst", {}).get("startup_overhead_100")),
                         ("1,000", (r.get("idle", {}).get("defaults") or {}).get("startup_overhead_1000"))):
            if o:
                L.append("| pipeline overhead per warm, startup warm of %s templates (ms): mean, median, p99 | 1 | %s | %s, %s, %s | <= 2 ms |" % (
                    label, fmt(o["overhead_ms_per_warm"], 2), fmt(o["overhead_ms_per_warm"], 2),
                    fmt(o["overhead_ms_per_warm_median"], 2), fmt(o["overhead_ms_per_warm_p99"], 2)))
        L.append("")
    if "lean" in r or "before" in r:
        L.extend(lean_report(r))
    if "traffic" in r:
        sys.path.insert(0, os.path.join(REPO, "Tests", "Benchmarks"))
        import traffic
        L.append(traffic.report(r["traffic"]))
        L.append("")
    return "\n".join(L)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(REPO, ".build", "release", "kvwarm"))
    ap.add_argument("--build", default="release")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--edits", type=int, default=200)
    ap.add_argument("--prefill-runs", type=int, default=2)
    ap.add_argument("--idle-windows", type=int, default=5)
    ap.add_argument("--idle-seconds", type=float, default=60)
    ap.add_argument("--ctx", type=int, default=16384)
    ap.add_argument("--only", default=",".join(SECTIONS))
    ap.add_argument("--baseline-binary", help="kvwarm before issue 14, for the traffic section")
    ap.add_argument("--traffic-rounds", type=int, default=5)
    ap.add_argument("--before-binary", help="an earlier kvwarm: every section but traffic runs for it too, "
                    "back to back with this one, and the report sets the two side by side")
    ap.add_argument("--lean-windows", type=int, default=3, help="idle windows of the lean section")
    ap.add_argument("--out", default="/tmp/kvwarm-bench/results.json")
    ap.add_argument("--report-only", metavar="JSON", help="print the report of an earlier run's results file")
    ap.add_argument("--merge", metavar="JSON", action="append", default=[],
                    help="with --report-only: add the sections of further results files")
    args = ap.parse_args()
    if args.report_only:
        r = json.load(open(args.report_only))
        for extra in args.merge:
            for k, v in json.load(open(extra)).items():
                if k == "idle":
                    r.setdefault("idle", {}).update(v)
                elif k in SECTIONS:
                    r[k] = v
        print(report(r))
        return
    only = args.only.split(",")
    binary = os.path.abspath(args.binary)
    before = os.path.abspath(args.before_binary) if args.before_binary else None
    work = tempfile.mkdtemp(prefix="kvwarm-bench-")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    r = {"machine": machine(), "binary": binary, "before_binary": before, "build": args.build, "date": time.strftime("%Y-%m-%d %H:%M %Z"),
         "args": vars(args)}

    def save():
        with open(args.out, "w") as f:
            json.dump(r, f, indent=1)

    def run_section(name, binary, dest):
        if name == "lean":
            dest["lean"] = lean(args, work, binary)
        elif name == "reaction":
            dest["reaction"] = {}
            for deb in (150, 0):
                dest["reaction"][str(deb)] = reaction(args, work, binary, deb)
        elif name == "burst":
            dest["burst"] = burst(args, work, binary)
        elif name == "idle":
            dest.setdefault("idle", {})["defaults"] = idle(args, work, binary, True, 5, args.idle_windows)
        elif name == "quiet":
            dest.setdefault("idle", {})["no watchdog, check 3600 s"] = idle(args, work, binary, False, 3600, args.idle_windows)
        elif name == "scale":
            dest["scale"] = scale(args, work, binary)
        elif name == "server":
            dest["server"] = server_section(args, work, binary)
        elif name == "traffic":
            dest["traffic"] = traffic_section(args, binary)

    try:
        for name in SECTIONS:
            if name not in only:
                continue
            # before and after run back to back, section by section, so both see the same machine
            if before and name != "traffic":
                log("== %s: before (%s)" % (name, before))
                run_section(name, before, r.setdefault("before", {}))
                save()
                log("== %s: after (%s)" % (name, binary))
            run_section(name, binary, r)
            save()
    finally:
        r["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        save()
        shutil.rmtree(work, ignore_errors=True)
    print(report(r))


if __name__ == "__main__":
    main()
