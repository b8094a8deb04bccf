"""Self-test for fake_llama_server.py. Run: python3 -m pytest Tests/Fixtures -q"""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "fake_llama_server.py")
KEY = "sekrit"


class Fake(object):
    def __init__(self, *extra, unix=None, save=True):
        self.tmp = tempfile.TemporaryDirectory()
        self.save_dir = os.path.join(self.tmp.name, "slots")
        os.mkdir(self.save_dir)
        cmd = [sys.executable, SCRIPT, "--api-key", KEY, "--n-ctx", "512"]
        if save:
            cmd += ["--slot-save-path", self.save_dir]
        if unix:
            self.unix = os.path.join(self.tmp.name, "s.sock")
            cmd += ["--unix", self.unix]
        else:
            self.unix = None
            cmd += ["--port", "0"]
        cmd += list(extra)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line.startswith("LISTENING "), (line, self.proc.stderr.read())
        self.where = line.split(" ", 1)[1]

    def conn(self, timeout=10):
        if self.unix:
            class UC(http.client.HTTPConnection):
                def connect(s):
                    s.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.sock.settimeout(timeout)
                    s.sock.connect(self.unix)
            return UC("localhost", timeout=timeout)
        return http.client.HTTPConnection("127.0.0.1", int(self.where), timeout=timeout)

    def raw(self, method, path, body=None, key=KEY, headers=None, timeout=10):
        c = self.conn(timeout)
        h = dict(headers or {})
        if key:
            h["Authorization"] = "Bearer " + key
        data = None
        if body is not None:
            data = body if isinstance(body, (bytes, str)) else json.dumps(body)
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        payload = r.read()
        c.close()
        return r.status, payload

    def req(self, method, path, body=None, **kw):
        status, payload = self.raw(method, path, body, **kw)
        return status, json.loads(payload)

    def control(self, faults):
        return self.req("POST", "/__control", {"faults": faults}, key=None)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(5)
            finally:
                self.proc.stdout.close()
                self.proc.stderr.close()
                self.tmp.cleanup()
        return self.proc.returncode


@pytest.fixture
def fake():
    f = Fake()
    yield f
    assert f.stop() == 0


def tok(fake, text):
    s, b = fake.req("POST", "/tokenize", {"content": text, "add_special": True})
    assert s == 200
    return b["tokens"]


def complete(fake, tokens, id_slot=-1):
    s, b = fake.req("POST", "/completion", {"prompt": tokens, "n_predict": 1, "cache_prompt": True,
                                             "id_slot": id_slot})
    assert s == 200, b
    return b


def test_identity_and_auth(fake):
    assert fake.req("GET", "/health", key=None) == (200, {"status": "ok"})
    s, b = fake.req("GET", "/props", key=None)
    assert s == 401
    assert b == {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}}
    s, b = fake.req("GET", "/slots", key="wrong")
    assert s == 401
    s, b = fake.req("GET", "/props", key=None, headers={"X-Api-Key": KEY})
    assert s == 200 and b["default_generation_settings"]["n_ctx"] == 512 and b["total_slots"] == 4
    assert b["build_info"] == "b0-unknown" and b["bos_token"] == "<bos>"
    s, b = fake.req("GET", "/v1/models")
    assert s == 200 and b["object"] == "list"
    assert set(b["data"][0]["meta"]) >= {"n_vocab", "n_ctx_train", "n_embd", "n_params", "size",
                                         "vocab_type", "n_ctx", "ftype"}
    s, b = fake.req("GET", "/slots")
    assert s == 200 and [x["id"] for x in b] == [0, 1, 2, 3]
    assert all(x["is_processing"] is False and "n_prompt_tokens" not in x for x in b)
    # request log records what the client sent
    s, log = fake.req("GET", "/__requests", key=None)
    assert [e["path"] for e in log] == ["/health", "/props", "/slots", "/props", "/v1/models", "/slots"]
    assert log[3]["headers"]["X-Api-Key"] == KEY and log[1]["status"] == 401
    assert fake.req("POST", "/__reset", key=None)[0] == 200
    assert fake.req("GET", "/__requests", key=None) == (200, [])


def test_template_tokenize_and_cache_n(fake):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    s, b = fake.req("POST", "/apply-template", {"messages": msgs, "add_generation_prompt": True})
    assert s == 200
    assert b["prompt"] == ("<bos><start_of_turn>user\nBe brief.\n\nHello there<end_of_turn>\n"
                           "<start_of_turn>model\n")
    T = tok(fake, b["prompt"])
    assert T[0] == 2 and T.count(2) == 1  # one BOS, not doubled
    assert tok(fake, "a b")[0] == 2
    s, b2 = fake.req("POST", "/tokenize", {"content": "a b"})
    assert b2["tokens"][0] != 2  # add_special defaults to false
    N = len(T)
    r = complete(fake, T, 0)
    assert r["id_slot"] == 0 and r["timings"]["cache_n"] == 0 and r["timings"]["prompt_n"] == N
    assert r["tokens_evaluated"] == N and r["tokens_cached"] == N and r["content"] == "x"
    r = complete(fake, T, 0)
    assert r["timings"]["cache_n"] == N - 1 and r["timings"]["prompt_n"] == 1
    full = T + tok(fake, "more words here")[1:]
    r = complete(fake, full, -1)  # auto pick: best prefix match is slot 0
    assert r["id_slot"] == 0 and r["timings"]["cache_n"] == N and r["timings"]["prompt_n"] == len(full) - N
    # unrelated prompt (no shared BOS) with id_slot -1 goes to an LRU idle slot, full miss
    r = complete(fake, tok(fake, "completely different")[1:], -1)
    assert r["id_slot"] != 0 and r["timings"]["cache_n"] == 0
    # OAI chat shape carries cached_tokens
    s, c = fake.req("POST", "/v1/chat/completions", {"messages": msgs, "max_tokens": 1, "id_slot": 0})
    assert s == 200 and c["usage"]["prompt_tokens_details"]["cached_tokens"] == N - 1
    s, slots = fake.req("GET", "/slots")
    assert slots[0]["n_prompt_tokens"] == N
    # too long
    s, e = fake.req("POST", "/completion", {"prompt": [5] * 600, "id_slot": 0})
    assert s == 400 and e["error"]["type"] == "exceed_context_size_error"


def test_save_restore_round_trip(fake):
    T = tok(fake, "the quick brown fox jumps over")
    complete(fake, T, 0)
    s, b = fake.req("POST", "/slots/0?action=save", {"filename": "warm.bin"})
    assert s == 200 and b["id_slot"] == 0 and b["filename"] == "warm.bin" and b["n_saved"] == len(T)
    assert b["n_written"] == os.path.getsize(os.path.join(fake.save_dir, "warm.bin"))
    assert "save_ms" in b["timings"]
    s, b = fake.req("POST", "/slots/0?action=erase")
    assert s == 200 and b == {"id_slot": 0, "n_erased": len(T)}
    s, b = fake.req("POST", "/slots/5?action=restore", {"filename": "warm.bin"})  # 5 % 4 == 1
    assert s == 200 and b["id_slot"] == 1 and b["n_restored"] == len(T) and "restore_ms" in b["timings"]
    full = T + tok(fake, "the lazy dog")[1:]
    r = complete(fake, full, 1)
    assert r["timings"]["cache_n"] == len(T)
    # failures
    s, b = fake.req("POST", "/slots/0?action=restore", {"filename": "missing.bin"})
    assert s == 400 and b["error"]["message"].startswith("Unable to restore slot")
    for bad in ["../x", "a/b", "a\\b", "x..y", ""]:
        s, b = fake.req("POST", "/slots/0?action=save", {"filename": bad})
        assert s == 400 and b["error"]["message"] == "Invalid filename", bad
    assert fake.req("POST", "/slots/x?action=save", {"filename": "a"})[1]["error"]["message"] == "Invalid slot ID"
    assert fake.req("POST", "/slots/0?action=nope", {"filename": "a"})[1]["error"]["message"] == "Invalid action"
    # bad input never crashes the server
    s, _ = fake.raw("POST", "/completion", b"{not json")
    assert s == 400
    s, _ = fake.raw("POST", "/slots/0?action=save", b"[1,2]")
    assert s == 400
    assert fake.req("GET", "/health")[0] == 200


def test_no_slot_save_path_is_501():
    g = Fake(save=False)
    try:
        s, b = g.req("POST", "/slots/0?action=save", {"filename": "a"})
        assert s == 501 and b["error"]["type"] == "not_supported_error"
    finally:
        assert g.stop() == 0


def test_fault_status_times_and_after(fake):
    fake.control({"status": {"path": "/props", "status": 500, "times": 2, "after": 1}})
    codes = [fake.req("GET", "/props")[0] for _ in range(5)]
    assert codes == [200, 500, 500, 200, 200]
    assert fake.req("GET", "/health")[0] == 200  # out of scope
    s, st = fake.req("GET", "/__control", key=None)
    assert st["faults"][0]["fired"] == 2 and st["faults"][0]["exhausted"] is True


def test_fault_slot_actions(fake):
    T = tok(fake, "alpha beta gamma delta")
    complete(fake, T, 0)
    fake.control({"save_500": {"times": 1}, "short_n_saved": {"after": 1}, "restore_400": {"times": 1}})
    s, b = fake.req("POST", "/slots/0?action=save", {"filename": "a"})
    assert s == 500 and b["error"]["message"] == "Unable to save slot"
    assert not os.path.exists(os.path.join(fake.save_dir, "a"))
    s, b = fake.req("POST", "/slots/0?action=save", {"filename": "a"})
    assert s == 200 and b["n_saved"] == len(T)  # short_n_saved skips its first save
    s, b = fake.req("POST", "/slots/0?action=save", {"filename": "a"})
    assert s == 200 and b["n_saved"] == len(T) - 1
    s, b = fake.req("POST", "/slots/1?action=restore", {"filename": "a"})
    assert s == 400 and b["error"]["message"].startswith("Unable to restore slot")
    s, b = fake.req("POST", "/slots/1?action=restore", {"filename": "a"})
    assert s == 200 and b["n_restored"] == len(T)
    fake.control({"save_enospc": True})
    s, b = fake.req("POST", "/slots/0?action=save", {"filename": "a"})
    assert s == 500
    s, b = fake.req("POST", "/slots/2?action=restore", {"filename": "a"})  # truncated file
    assert s == 400


def test_fault_low_cache_n_after_restore(fake):
    T = tok(fake, "one two three four five")
    complete(fake, T, 0)
    assert fake.req("POST", "/slots/0?action=save", {"filename": "w"})[0] == 200
    fake.control({"low_cache_n": True})
    complete(fake, T, 2)  # not after a restore: unaffected
    assert complete(fake, T, 2)["timings"]["cache_n"] == len(T) - 1
    assert fake.req("POST", "/slots/1?action=restore", {"filename": "w"})[0] == 200
    r = complete(fake, T, 1)
    assert r["timings"]["cache_n"] == 0 and r["timings"]["prompt_n"] == len(T)


def test_fault_transport(fake):
    fake.control({"reset": {"path": "/props", "times": 1}, "malformed": {"path": "/slots", "times": 1},
                  "hang": {"path": "/v1/models", "seconds": 0.4, "times": 1}})
    with pytest.raises(http.client.IncompleteRead):
        fake.raw("GET", "/props")
    assert fake.req("GET", "/props")[0] == 200
    s, payload = fake.raw("GET", "/slots")
    assert s == 200
    with pytest.raises(ValueError):
        json.loads(payload)
    t0 = time.time()
    assert fake.req("GET", "/v1/models")[0] == 200
    assert time.time() - t0 >= 0.35
    fake.control({"hang": {"path": "/health"}})  # never answers
    with pytest.raises(socket.timeout):
        fake.raw("GET", "/health", timeout=0.5)
    fake.control({"close": {"times": 1}})
    with pytest.raises((http.client.RemoteDisconnected, ConnectionResetError)):
        fake.raw("GET", "/health")
    assert fake.req("GET", "/health")[0] == 200


def test_fault_loading_and_fingerprint(fake):
    fake.control({"loading": {"seconds": 0.5}})
    s, b = fake.req("GET", "/health")
    assert s == 503 and b == {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}}
    assert fake.req("GET", "/props", key=None)[0] == 503  # before auth, like the real server
    time.sleep(0.6)
    assert fake.req("GET", "/health")[0] == 200
    fake.control({"fingerprint_flip": {"build_info": "b9-other", "n_ctx": 256}})
    seq = [fake.req("GET", "/props")[1] for _ in range(3)]
    assert [p["build_info"] for p in seq] == ["b9-other", "b0-unknown", "b9-other"]
    assert [p["default_generation_settings"]["n_ctx"] for p in seq] == [256, 512, 256]


def test_unix_socket_and_startup_faults():
    f = Fake("--faults", json.dumps({"status": {"status": 401, "times": 1}}), unix=True)
    try:
        s, b = f.req("GET", "/health")
        assert s == 401
        assert f.req("GET", "/health") == (200, {"status": "ok"})
    finally:
        assert f.stop() == 0
    assert not os.path.exists(f.unix)


def test_prefill_delay_marks_slot_busy():
    f = Fake("--prefill-ms-per-token", "100")
    try:
        import threading
        T = tok(f, "a b c d e f g h")
        th = threading.Thread(target=complete, args=(f, T, 3))
        th.start()
        time.sleep(0.3)
        s, slots = f.req("GET", "/slots")
        assert slots[3]["is_processing"] is True
        th.join()
        s, slots = f.req("GET", "/slots")
        assert slots[3]["is_processing"] is False
    finally:
        assert f.stop() == 0
