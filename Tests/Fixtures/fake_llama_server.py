#!/usr/bin/env python3
"""Fake llama.cpp llama-server for kvwarm fault-injection tests (stdlib only).

Mimics the JSON shapes of the real server (see docs in the reference notes,
sections 1, 2, 5-8) closely enough for kvwarm's client code, keeps a fake
per-slot KV (a token list per slot) and lets a test inject faults through a
control API on the same listener.

Usage:
    fake_llama_server.py [--host 127.0.0.1] [--port 0] [--unix PATH]
                         [--api-key K[,K2]] [--slot-save-path DIR]
                         [--slots 4] [--n-ctx 4096] [--faults JSON|@file]
                         [--prefill-ms-per-token 0] [--loading-seconds 0]
                         [--verbose] ...   (see --help)

First stdout line: "LISTENING <port>" (TCP) or "LISTENING <socket path>".

Control API (never needs the API key, never logged, never faulted):
    POST /__control   {"faults": {...}, "prefill_ms_per_token": x,
                       "loading_seconds": s}          -> current control state
    GET  /__control                                   -> current control state
    GET  /__requests[?since=N&path=PREFIX]            -> request log (list; "t" = arrival,
                                                         "t_done" = response written,
                                                         "conn" = connection number)
    POST /__reset     {"log": true, "faults": false, "slots": false}
    GET  /__state                                     -> slots incl. tokens

Faults: see FAULT_NAMES and the README-style comment above class Faults.
"""

import argparse
import errno
import json
import os
import re
import signal
import socket
import socketserver
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VERBOSE = False


def vlog(msg):
    if VERBOSE:
        sys.stderr.write("[fake-llama] %s\n" % msg)
        sys.stderr.flush()


# --------------------------------------------------------------------------
# Errors (same body shape as the real server: {"error": {code,message,type}})
# --------------------------------------------------------------------------

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    500: "server_error",
    501: "not_supported_error",
    503: "unavailable_error",
}

MSG_RESTORE_FAIL = "Unable to restore slot: No available space in KV cache or invalid slot save file"
MSG_RESTORE_FIT = "Unable to restore slot: Restored prompt does not fit in the slot context"
MSG_RESTORE_TOKENS = "Unable to restore slot: Invalid tokens in slot save file"
MSG_SAVE_FAIL = "Unable to save slot"
MSG_NO_SLOT_SAVE = "This server does not support slots action. Start it with `--slot-save-path`"


class HttpError(Exception):
    def __init__(self, status, message, etype=None, extra=None):
        Exception.__init__(self, message)
        self.status = int(status)
        self.message = message
        self.etype = etype or ERROR_TYPES.get(self.status, "server_error")
        self.extra = extra or {}

    def body(self):
        err = {"code": self.status, "message": self.message, "type": self.etype}
        err.update(self.extra)
        return {"error": err}


def bad_request(msg):
    return HttpError(400, msg)


# --------------------------------------------------------------------------
# Fake tokenizer and chat template
# --------------------------------------------------------------------------

BOS_ID = 2
EOS_ID = 1
SPECIAL = {"<bos>": BOS_ID, "<eos>": EOS_ID, "<start_of_turn>": 105, "<end_of_turn>": 106}
NEWLINE_ID = 107
FIRST_NORMAL_ID = 1000
_SPECIAL_RE = "|".join(re.escape(s) for s in SPECIAL)
# Specials are single tokens; "\n" is a token; otherwise a word together with
# its leading spaces/tabs (sentencepiece-like "▁word"); a lone "<"; trailing
# horizontal whitespace.
TOKEN_RE = re.compile(
    r"(?P<special>" + _SPECIAL_RE + r")|(?P<nl>\n)|(?P<word>[^\S\n]*[^\s<]+)|(?P<lt>[^\S\n]*<)|(?P<ws>[^\S\n]+)"
)
TOKEN_RE_NOSPECIAL = re.compile(r"(?P<nl>\n)|(?P<word>[^\S\n]*[^\s<]+)|(?P<lt>[^\S\n]*<)|(?P<ws>[^\S\n]+)")


class Tokenizer(object):
    def __init__(self, n_vocab, bos_token="<bos>"):
        self.n_vocab = int(n_vocab)
        self.lock = threading.Lock()
        self.pieces = {v: k for k, v in SPECIAL.items()}
        self.pieces[NEWLINE_ID] = "\n"

    def piece_id(self, piece):
        span = max(1, self.n_vocab - FIRST_NORMAL_ID)
        tid = FIRST_NORMAL_ID + (zlib.crc32(piece.encode("utf-8", "surrogatepass")) % span)
        with self.lock:
            self.pieces.setdefault(tid, piece)
        return tid

    def tokenize_text(self, text, parse_special=True):
        out = []
        rx = TOKEN_RE if parse_special else TOKEN_RE_NOSPECIAL
        for m in rx.finditer(text):
            g = m.lastgroup
            s = m.group(0)
            if g == "special":
                out.append(SPECIAL[s])
            elif g == "nl":
                out.append(NEWLINE_ID)
            else:
                out.append(self.piece_id(s))
        return out

    def tokenize(self, content, add_special=False, parse_special=True):
        """content: str, or array mixing str and int token ids (ints verbatim)."""
        toks = []
        if isinstance(content, str):
            toks = self.tokenize_text(content, parse_special)
        elif isinstance(content, list):
            for item in content:
                if isinstance(item, bool):
                    raise bad_request("\"content\" array must hold strings or token ids")
                if isinstance(item, int):
                    toks.append(item)
                elif isinstance(item, str):
                    toks.extend(self.tokenize_text(item, parse_special))
                else:
                    raise bad_request("\"content\" array must hold strings or token ids")
        else:
            raise bad_request("\"content\" must be a string or an array")
        # Deterministic choice: do not double the BOS when the text already
        # starts with a literal "<bos>" (as /apply-template output does).
        if add_special and (not toks or toks[0] != BOS_ID):
            toks = [BOS_ID] + toks
        return toks

    def piece(self, tid):
        with self.lock:
            return self.pieces.get(tid, "")

    def detokenize(self, tokens):
        return "".join(self.piece(t) for t in tokens)


def message_text(content):
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for p in content:
            if isinstance(p, dict) and p.get("type", "text") == "text":
                t = p.get("text", "")
                if not isinstance(t, str):
                    raise bad_request("message content part \"text\" must be a string")
                parts.append(t)
            elif isinstance(p, str):
                parts.append(p)
            else:
                raise bad_request("unsupported message content part")
        return "".join(parts)
    raise bad_request("message content must be a string or an array")


def apply_template(messages, add_generation_prompt=True):
    """Gemma-3-like: "<bos>" + "<start_of_turn>{role}\\n{content|trim}<end_of_turn>\\n"
    per message, role assistant->model, system content (trimmed) + "\\n\\n"
    prepended to the first following user message (or emitted as a user turn
    if no user message follows), plus "<start_of_turn>model\\n" if requested."""
    if not isinstance(messages, list):
        raise bad_request("'messages' is required and must be an array")
    out = ["<bos>"]
    pending_system = None
    for m in messages:
        if not isinstance(m, dict) or not isinstance(m.get("role"), str):
            raise bad_request("each message must be an object with a string 'role'")
        role = m["role"]
        text = message_text(m.get("content")).strip()
        if role == "system" or role == "developer":
            pending_system = text if pending_system is None else pending_system + "\n\n" + text
            continue
        if role == "assistant":
            role = "model"
        if role == "user" and pending_system is not None:
            text = pending_system + "\n\n" + text
            pending_system = None
        out.append("<start_of_turn>%s\n%s<end_of_turn>\n" % (role, text))
    if pending_system is not None:
        out.append("<start_of_turn>user\n%s<end_of_turn>\n" % pending_system)
    if add_generation_prompt:
        out.append("<start_of_turn>model\n")
    return "".join(out)


DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- for message in messages -%}"
    "{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '\\n' "
    "+ message['content'] | trim + '<end_of_turn>\\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}"
)


# --------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------
#
# Active faults are a JSON object {name: spec} (or a list of specs, each with a
# "name" key). A spec may be `true`/`{}` for defaults. Common spec keys:
#   "path":   prefix (or list of prefixes) matched against the request path,
#             with or without the query string ("/slots", "/slots/0?action=save")
#   "method": "GET"/"POST" (optional)
#   "after":  skip the first n requests the fault applies to
#   "times":  fire at most n times, then stop (absent/null: unlimited)
# A fault only counts requests it applies to (e.g. restore_400 only counts
# restore actions). Fault-specific keys:
#   loading          {"seconds": s}  503 "Loading model" on every route (incl.
#                    /health) for s seconds from the first firing (absent: forever)
#   status           {"status": 500, "message": ..., "type": ...}
#   hang             {"seconds": s, "phase": "before"|"after"}; seconds absent/null:
#                    never answer (until server shutdown). "after" = do the work
#                    (e.g. write the save file) then stall before the response.
#   close            close the connection without any response
#   reset            {"bytes": k, "rst": false} headers with the full
#                    Content-Length, only k (default half) body bytes, then close
#                    (request is fully processed first). rst=true -> TCP RST.
#   malformed        {"status": 200, "body": "..."} 200 with an invalid JSON body
#   restore_400      {"message": ...} restore action -> 400, slot cleared
#   save_500         save action -> 500 "Unable to save slot", file untouched
#   save_enospc      save action -> partial (truncated) file written, then 500
#                    "Unable to save slot" (like a full disk)
#   short_n_saved    {"delta": 1} save reports n_saved = real - delta
#   low_cache_n      first completion on a slot after a restore reports
#                    cache_n 0 / prompt_n = N (SWA trap); {"always": true} ->
#                    every completion
#   fingerprint_flip {"build_info": "...", "n_ctx": n, "mode": "alternate"|
#                    "permanent"} /props calls alternate (1st gated call flipped,
#                    2nd normal, ...) or, with permanent, are always flipped;
#                    /v1/models and /slots reflect the last /props state.

FAULT_NAMES = (
    "loading", "status", "hang", "close", "reset", "malformed",
    "restore_400", "save_500", "save_enospc", "short_n_saved",
    "low_cache_n", "fingerprint_flip",
)

DEFAULT_PATHS = {
    "restore_400": ["/slots/"],
    "save_500": ["/slots/"],
    "save_enospc": ["/slots/"],
    "short_n_saved": ["/slots/"],
    "fingerprint_flip": ["/props"],
}


class Fault(object):
    def __init__(self, name, spec):
        if name not in FAULT_NAMES:
            raise bad_request("unknown fault %r (known: %s)" % (name, ", ".join(FAULT_NAMES)))
        if spec is True or spec is None:
            spec = {}
        if not isinstance(spec, dict):
            raise bad_request("fault %r spec must be an object or true" % name)
        self.name = name
        self.spec = spec
        paths = spec.get("path", DEFAULT_PATHS.get(name))
        if isinstance(paths, str):
            paths = [paths]
        if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)):
            raise bad_request("fault %r: 'path' must be a string or an array of strings" % name)
        self.paths = paths
        self.method = spec.get("method")
        self.after = int(spec.get("after", 0) or 0)
        times = spec.get("times")
        self.times = None if times is None else int(times)
        self.seen = 0
        self.fired = 0
        self.window_start = None  # loading
        self.flip_count = 0       # fingerprint_flip

    def applies(self, req):
        if self.method and self.method.upper() != req.method:
            return False
        if self.paths is None:
            return True
        return any(req.route.startswith(p) or req.raw_path.startswith(p) for p in self.paths)

    def exhausted(self):
        return self.times is not None and self.fired >= self.times

    def describe(self):
        return {"name": self.name, "spec": self.spec, "seen": self.seen, "fired": self.fired,
                "exhausted": self.exhausted()}


class Faults(object):
    def __init__(self):
        self.lock = threading.Lock()
        self.items = []

    def set(self, faults):
        items = []
        if faults is None:
            faults = {}
        if isinstance(faults, dict):
            for name, spec in faults.items():
                items.append(Fault(name, spec))
        elif isinstance(faults, list):
            for spec in faults:
                if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
                    raise bad_request("fault list entries must be objects with a 'name'")
                items.append(Fault(spec["name"], spec))
        else:
            raise bad_request("'faults' must be an object or an array")
        with self.lock:
            self.items = items

    def describe(self):
        with self.lock:
            return [f.describe() for f in self.items]

    def fire(self, name, req, extra_ok=None):
        """Return the spec of the first fault called `name` that fires for
        this request (and count it), else None."""
        with self.lock:
            for f in self.items:
                if f.name != name or not f.applies(req):
                    continue
                if extra_ok is not None and not extra_ok(f):
                    continue
                if name == "loading" and f.window_start is not None:
                    # inside an open loading window: every matching request is 503
                    secs = f.spec.get("seconds")
                    if secs is not None and time.time() - f.window_start >= float(secs):
                        continue
                    if f.exhausted():
                        continue
                    f.seen += 1
                    f.fired += 1
                    req.fired.append(name)
                    return f.spec
                f.seen += 1
                if f.seen <= f.after or f.exhausted():
                    continue
                if name == "loading":
                    f.window_start = time.time()
                if name == "fingerprint_flip":
                    f.flip_count += 1
                    mode = f.spec.get("mode", "alternate")
                    if mode == "alternate" and f.flip_count % 2 == 0:
                        # even gated call: normal values (not counted as a firing)
                        return None
                f.fired += 1
                req.fired.append(name)
                return f.spec
        return None


# --------------------------------------------------------------------------
# Server state
# --------------------------------------------------------------------------

class Slot(object):
    def __init__(self, sid, n_ctx):
        self.id = sid
        self.n_ctx = n_ctx
        self.tokens = []
        self.is_processing = False
        self.has_task = False
        self.id_task = -1
        self.last_used = 0
        self.n_prompt_tokens_processed = 0
        self.n_prompt_tokens_cache = 0
        self.restored_pending = False

    def to_json(self, n_ctx):
        d = {"id": self.id, "n_ctx": n_ctx, "speculative": False, "is_processing": self.is_processing}
        if self.has_task:
            d["id_task"] = self.id_task
            d["n_prompt_tokens"] = len(self.tokens)
            d["n_prompt_tokens_processed"] = self.n_prompt_tokens_processed if self.is_processing else 0
            d["n_prompt_tokens_cache"] = self.n_prompt_tokens_cache if self.is_processing else 0
            d["params"] = {"n_predict": -1, "cache_prompt": True}
            d["next_token"] = [{"has_next_token": self.is_processing, "has_new_line": False,
                                "n_remain": -1, "n_decoded": 0}]
        return d


class State(object):
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.cond = threading.Condition(self.lock)
        self.slots = [Slot(i, args.n_ctx) for i in range(args.slots)]
        self.tokenizer = Tokenizer(args.n_vocab)
        self.faults = Faults()
        self.log = []
        self.log_lock = threading.Lock()
        self.task_counter = 0
        self.use_counter = 0
        self.loading_until = time.time() + args.loading_seconds if args.loading_seconds > 0 else 0.0
        self.prefill_ms_per_token = args.prefill_ms_per_token
        self.shutdown_event = threading.Event()
        self.flipped = False
        self.flip_spec = {}
        self.metrics = {"prompt_tokens_total": 0, "prompt_tokens_cached_total": 0, "requests": 0}
        self.api_keys = [k for k in (args.api_key or "").split(",") if k] if args.api_key else []

    def next_task(self):
        self.task_counter += 1
        return self.task_counter

    def next_use(self):
        self.use_counter += 1
        return self.use_counter

    def n_ctx_now(self):
        if self.flipped and "n_ctx" in self.flip_spec:
            return int(self.flip_spec["n_ctx"])
        if self.flipped:
            return max(256, self.args.n_ctx // 2)
        return self.args.n_ctx

    def build_info_now(self):
        if self.flipped:
            return str(self.flip_spec.get("build_info", "b1-flipped0"))
        return self.args.build_info


def common_prefix(a, b):
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


INVALID_NAME_CHARS = set(':*?"<>|/\\')


def validate_filename(name):
    if not isinstance(name, str) or not name:
        return False
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    if len(raw) > 255:
        return False
    for ch in name:
        o = ord(ch)
        if o < 0x20 or o == 0x7F or 0x80 <= o <= 0x9F:
            return False
        if o in (0xFF0E, 0x2215, 0x2216, 0xFFFD, 0xFEFF) or 0xD800 <= o <= 0xDFFF:
            return False
        if ch in INVALID_NAME_CHARS:
            return False
    if name[0] == " " or name[-1] == " " or name[-1] == "." or ".." in name or name == ".":
        return False
    return True


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------

class Req(object):
    def __init__(self, method, raw_path, headers, body_raw):
        self.method = method
        self.raw_path = raw_path
        parts = urlsplit(raw_path)
        self.route = parts.path or "/"
        self.query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.headers = headers
        self.body_raw = body_raw
        self.body = None
        self.body_error = None
        if body_raw:
            try:
                self.body = json.loads(body_raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as e:
                self.body_error = str(e)
        self.fired = []

    def json_body(self, required=True):
        if self.body_error is not None:
            raise bad_request("Failed to parse JSON body: %s" % self.body_error)
        if self.body is None:
            if required:
                raise bad_request("Request body is required (JSON object)")
            return {}
        if not isinstance(self.body, dict):
            raise bad_request("Request body must be a JSON object")
        return self.body


class Response(object):
    def __init__(self, status, obj=None, raw=None, ctype="application/json; charset=utf-8"):
        self.status = status
        if raw is None:
            raw = json.dumps(obj, ensure_ascii=False).encode("utf-8")
        self.raw = raw
        self.ctype = ctype
        self.stream_chunks = None  # list of bytes for SSE


def err_response(e):
    return Response(e.status, e.body())


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "llama.cpp-fake"
    sys_version = ""
    timeout = 600  # idle keep-alive / slow client read timeout
    # one handler instance per accepted connection: numbered so a test can see
    # whether a client reuses its keep-alive connections
    _conn_counter = iter(range(1, 1 << 62))
    _conn_lock = threading.Lock()

    def setup(self):
        with Handler._conn_lock:
            self.conn_id = next(Handler._conn_counter)
        super().setup()
        # llama-server (cpp-httplib) sends a small response's headers and body in
        # one write; this handler writes them separately, which on a keep-alive
        # connection meets Nagle + the client's delayed ACK (40 ms per response).
        # TCP_NODELAY gives the fake llama-server's timing. (TCP only: the stdlib's
        # disable_nagle_algorithm switch would fail on the unix socket.)
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # ---- BaseHTTPRequestHandler hooks ----
    def log_message(self, fmt, *args):
        if VERBOSE:
            sys.stderr.write("[fake-llama] %s\n" % (fmt % args))

    def address_string(self):
        ca = self.client_address
        if isinstance(ca, tuple) and ca:
            return str(ca[0])
        return "unix"

    def send_error(self, code, message=None, explain=None):
        # Called by the stdlib for malformed request lines/headers: JSON body.
        try:
            body = json.dumps(HttpError(code, message or "error").body()).encode()
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)
        except Exception:
            pass
        self.close_connection = True

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_OPTIONS(self):
        self.dispatch("OPTIONS")

    # ---- body reading ----
    def read_body(self):
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            chunks = []
            total = 0
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise HttpError(400, "truncated chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers
                        tl = self.rfile.readline(65537)
                        if not tl or tl in (b"\r\n", b"\n"):
                            break
                    break
                total += size
                if total > 100 * 1024 * 1024:
                    raise HttpError(413, "Payload Too Large")
                data = self.rfile.read(size)
                if len(data) < size:
                    raise HttpError(400, "truncated chunked body")
                chunks.append(data)
                self.rfile.readline(3)
            return b"".join(chunks)
        cl = self.headers.get("Content-Length")
        if cl is None:
            return b""
        try:
            n = int(cl)
        except ValueError:
            raise HttpError(400, "Invalid Content-Length")
        if n < 0:
            raise HttpError(400, "Invalid Content-Length")
        if n > 100 * 1024 * 1024:
            raise HttpError(413, "Payload Too Large")
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            raise HttpError(400, "truncated body")
        return data

    # ---- response writing ----
    def write_response(self, resp, req=None, reset_spec=None):
        body = resp.raw
        if self.command == "HEAD":
            body_to_send = b""
        else:
            body_to_send = body
        self.send_response(resp.status)
        self.send_header("Content-Type", resp.ctype)
        self.send_header("Access-Control-Allow-Origin", "*")
        if resp.stream_chunks is not None and reset_spec is None:
            # SSE: no Content-Length, connection closes at the end
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            for c in resp.stream_chunks:
                self.wfile.write(c)
                self.wfile.flush()
            return
        if resp.stream_chunks is not None:
            body = body_to_send = b"".join(resp.stream_chunks)
        self.send_header("Content-Length", str(len(body)))
        if reset_spec is not None:
            self.end_headers()
            k = reset_spec.get("bytes")
            k = len(body) // 2 if k is None else max(0, min(int(k), max(0, len(body) - 1)))
            self.wfile.write(body_to_send[:k])
            self.wfile.flush()
            self.abort_connection(rst=bool(reset_spec.get("rst", False)))
            return
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body_to_send:
            self.wfile.write(body_to_send)
        self.wfile.flush()

    def abort_connection(self, rst=False):
        self.close_connection = True
        try:
            if rst:
                import struct
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.connection.close()
        except OSError:
            pass

    def hang(self, spec):
        secs = spec.get("seconds")
        st = self.server.state
        if secs is None:
            st.shutdown_event.wait()
            return False  # never answer
        st.shutdown_event.wait(max(0.0, float(secs)))
        return not st.shutdown_event.is_set()

    # ---- main dispatch ----
    def dispatch(self, method):
        st = self.server.state
        t = time.time()
        try:
            body_raw = self.read_body()
        except HttpError as e:
            self.close_connection = True
            self.safe_write(err_response(e))
            return
        except (ValueError, OSError) as e:
            self.close_connection = True
            self.safe_write(err_response(bad_request("bad request body: %s" % e)))
            return
        if (self.headers.get("Connection") or "").lower() == "close":
            self.close_connection = True
        req = Req(method, self.path, self.headers, body_raw)

        if req.route.startswith("/__"):
            try:
                resp = self.control(req)
            except HttpError as e:
                resp = err_response(e)
            except Exception as e:  # never crash
                resp = Response(500, HttpError(500, "internal error: %r" % (e,)).body())
            self.safe_write(resp)
            return

        entry = {"t": t, "method": method, "path": self.path, "route": req.route, "query": req.query,
                 "body": req.body, "headers": dict(self.headers.items()), "status": None, "faults": req.fired,
                 "conn": self.conn_id}
        if req.body is None and body_raw:
            entry["raw_body"] = body_raw[:4096].decode("utf-8", "replace")
        with st.log_lock:
            entry["id"] = len(st.log)
            st.log.append(entry)
        vlog("%s %s %s" % (method, self.path, body_raw[:200]))

        try:
            self.handle_request(req, entry)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, socket.timeout):
            self.close_connection = True
        except Exception as e:  # last resort
            vlog("handler crash: %r" % (e,))
            self.close_connection = True
        # when the response was written (or the request abandoned): lets a
        # benchmark subtract the fake's own processing from client-side gaps
        entry["t_done"] = time.time()

    def safe_write(self, resp, reset_spec=None):
        try:
            self.write_response(resp, reset_spec=reset_spec)
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, OSError):
            self.close_connection = True

    def handle_request(self, req, entry):
        st = self.server.state
        f = st.faults

        if f.fire("close", req) is not None:
            entry["status"] = "closed"
            self.abort_connection()
            return
        if f.fire("loading", req) is not None or (st.loading_until and time.time() < st.loading_until):
            resp = err_response(HttpError(503, "Loading model", "unavailable_error"))
            entry["status"] = resp.status
            self.safe_write(resp)
            return
        spec = f.fire("hang", req, lambda ft: ft.spec.get("phase", "before") == "before")
        if spec is not None and not self.hang(spec):
            entry["status"] = "hung"
            self.abort_connection()
            return
        spec = f.fire("status", req)
        if spec is not None:
            code = int(spec.get("status", 500))
            resp = err_response(HttpError(code, spec.get("message", "Injected fault (HTTP %d)" % code),
                                          spec.get("type")))
            if "body" in spec:
                resp = Response(code, raw=str(spec["body"]).encode("utf-8"))
            entry["status"] = resp.status
            self.safe_write(resp)
            return

        try:
            self.check_auth(req)
            resp = self.route(req)
        except HttpError as e:
            resp = err_response(e)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError) as e:
            resp = err_response(bad_request("bad request: %s" % e))
        except Exception as e:  # never crash, always answer
            resp = err_response(HttpError(500, "internal error: %r" % (e,), "server_error"))

        spec = f.fire("malformed", req)
        if spec is not None:
            resp = Response(int(spec.get("status", 200)),
                            raw=str(spec.get("body", '{"status": "ok", "content": "x", "id_sl')).encode("utf-8"))
        spec = f.fire("hang", req, lambda ft: ft.spec.get("phase", "before") == "after")
        if spec is not None and not self.hang(spec):
            entry["status"] = "hung"
            self.abort_connection()
            return
        reset_spec = f.fire("reset", req)
        entry["status"] = resp.status
        self.write_response(resp, reset_spec=reset_spec)

    def check_auth(self, req):
        st = self.server.state
        if not st.api_keys or req.method == "OPTIONS":
            return
        if req.route in ("/health", "/v1/health"):
            return
        key = None
        auth = req.headers.get("Authorization")
        if auth is not None:
            key = auth[7:] if auth.startswith("Bearer ") else auth
        xk = req.headers.get("X-Api-Key")
        if (key is None or key not in st.api_keys) and xk is not None:
            key = xk
        if key is None or key not in st.api_keys:
            raise HttpError(401, "Invalid API Key", "authentication_error")

    # ---- routes ----
    def route(self, req):
        r = req.route
        m = req.method
        if m == "OPTIONS":
            return Response(200, raw=b"", ctype="text/plain")
        get = m in ("GET", "HEAD")
        if r in ("/health", "/v1/health") and get:
            return Response(200, {"status": "ok"})
        if r == "/props" and get:
            return Response(200, self.props(req))
        if r in ("/v1/models", "/models") and get:
            return Response(200, self.models(r == "/models"))
        if r == "/slots" and get:
            return self.slots_list(req)
        if r == "/metrics" and get:
            return self.metrics()
        if r.startswith("/slots/") and m == "POST":
            return self.slot_action(req)
        if r == "/apply-template" and m == "POST":
            b = req.json_body()
            return Response(200, {"prompt": apply_template(b.get("messages"), bool(b.get("add_generation_prompt", True)))})
        if r == "/tokenize" and m == "POST":
            return self.tokenize(req)
        if r == "/detokenize" and m == "POST":
            b = req.json_body()
            toks = b.get("tokens", [])
            if not isinstance(toks, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in toks):
                raise bad_request("\"tokens\" must be an array of integers")
            return Response(200, {"content": self.server.state.tokenizer.detokenize(toks)})
        if r in ("/completion", "/completions") and m == "POST":
            return self.completion(req, "native")
        if r == "/v1/completions" and m == "POST":
            return self.completion(req, "oai_cmpl")
        if r in ("/chat/completions", "/v1/chat/completions") and m == "POST":
            return self.completion(req, "oai_chat")
        raise HttpError(404, "File Not Found", "not_found_error")

    def props(self, req):
        st = self.server.state
        a = st.args
        spec = st.faults.fire("fingerprint_flip", req)
        with st.lock:
            if spec is not None:
                st.flipped = True
                st.flip_spec = spec
            else:
                st.flipped = False
            n_ctx = st.n_ctx_now()
            build = st.build_info_now()
        return {
            "default_generation_settings": {
                "id": 0, "id_task": -1, "n_ctx": n_ctx, "speculative": False, "is_processing": False,
                "params": {"n_predict": -1, "seed": 4294967295, "temperature": 0.8, "top_k": 40,
                           "top_p": 0.95, "cache_prompt": True, "n_keep": 0},
            },
            "total_slots": a.slots,
            "model_alias": a.model_alias or a.model_path,
            "model_path": a.model_path,
            "modalities": {"vision": False, "video": False, "audio": False},
            "media_marker": "<__media__>",
            "endpoint_slots": not a.no_slots,
            "endpoint_props": False,
            "endpoint_metrics": bool(a.metrics),
            "webui": False,
            "ui": False,
            "chat_template": a.chat_template,
            "chat_template_caps": {},
            "bos_token": a.bos_token,
            "eos_token": a.eos_token,
            "build_info": build,
            "is_sleeping": False,
            "cors_proxy_enabled": False,
        }

    def models(self, ollama):
        st = self.server.state
        a = st.args
        with st.lock:
            n_ctx = st.n_ctx_now()
        mid = a.model_alias or a.model_path
        meta = {"vocab_type": a.vocab_type, "n_vocab": a.n_vocab, "n_ctx": n_ctx,
                "n_ctx_train": a.n_ctx_train, "n_embd": a.n_embd, "n_params": a.n_params,
                "size": a.size, "ftype": a.ftype}
        out = {"object": "list", "data": [{
            "id": mid, "aliases": [a.model_alias] if a.model_alias else [], "tags": [],
            "architecture": "gemma3", "object": "model", "created": int(time.time()),
            "owned_by": "llamacpp", "meta": meta}]}
        if ollama:
            out["models"] = [{"name": mid, "model": mid, "modified_at": "", "size": "", "digest": "",
                              "type": "model", "description": "", "tags": [""],
                              "capabilities": ["completion"], "parameters": "",
                              "details": {"parent_model": "", "format": "gguf", "family": "",
                                          "families": [""], "parameter_size": "", "quantization_level": ""}}]
        return out

    def slots_list(self, req):
        st = self.server.state
        if st.args.no_slots:
            raise HttpError(501, "This server does not support slots endpoint. Start it with `--slots`")
        with st.lock:
            n_ctx = st.n_ctx_now()
            arr = [s.to_json(n_ctx) for s in st.slots]
            idle = any(not s.is_processing for s in st.slots)
        if req.query.get("fail_on_no_slot") and not idle:
            raise HttpError(503, "no slot available", "unavailable_error")
        return Response(200, arr)

    def metrics(self):
        st = self.server.state
        if not st.args.metrics:
            raise HttpError(501, "This server does not support metrics endpoint. Start it with `--metrics`")
        with st.lock:
            m = dict(st.metrics)
            busy = sum(1 for s in st.slots if s.is_processing)
        text = ("# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.\n"
                "# TYPE llamacpp:prompt_tokens_total counter\n"
                "llamacpp:prompt_tokens_total %d\n"
                "# TYPE llamacpp:prompt_tokens_cached_total counter\n"
                "llamacpp:prompt_tokens_cached_total %d\n"
                "# TYPE llamacpp:requests_processing gauge\n"
                "llamacpp:requests_processing %d\n"
                "# TYPE llamacpp:requests_deferred gauge\n"
                "llamacpp:requests_deferred 0\n") % (m["prompt_tokens_total"], m["prompt_tokens_cached_total"], busy)
        return Response(200, raw=text.encode(), ctype="text/plain; version=0.0.4")

    def tokenize(self, req):
        st = self.server.state
        b = req.json_body()
        if "content" not in b:
            raise bad_request("\"content\" is required")
        toks = st.tokenizer.tokenize(b["content"], bool(b.get("add_special", False)),
                                     bool(b.get("parse_special", True)))
        if b.get("with_pieces"):
            return Response(200, {"tokens": [{"id": t, "piece": st.tokenizer.piece(t)} for t in toks]})
        return Response(200, {"tokens": toks})

    # ---- slot actions ----
    def slot_action(self, req):
        st = self.server.state
        a = st.args
        if not a.slot_save_path:
            raise HttpError(501, MSG_NO_SLOT_SAVE, "not_supported_error")
        sid_s = req.route[len("/slots/"):]
        try:
            sid = int(sid_s)
        except ValueError:
            raise bad_request("Invalid slot ID")
        if sid < 0:
            raise bad_request("Invalid slot ID")
        action = req.query.get("action", "")
        if action not in ("save", "restore", "erase"):
            raise bad_request("Invalid action")
        slot_idx = sid % len(st.slots)
        filename = None
        if action in ("save", "restore"):
            b = req.json_body()
            filename = b.get("filename")
            if filename is None:
                raise bad_request("[json.exception.out_of_range.403] key 'filename' not found")
            if not isinstance(filename, str):
                raise bad_request("[json.exception.type_error.302] type must be string")
            if not validate_filename(filename):
                raise bad_request("Invalid filename")
        # fault decisions (counted only for the matching action)
        act = lambda ft: True
        f = st.faults
        with st.cond:
            while st.slots[slot_idx].is_processing:  # real server defers, HTTP call blocks
                if st.shutdown_event.is_set():
                    raise HttpError(503, "shutting down", "unavailable_error")
                st.cond.wait(0.5)
            slot = st.slots[slot_idx]
            path = os.path.join(a.slot_save_path, filename) if filename else None
            t0 = time.time()
            if action == "save":
                if f.fire("save_500", req, act) is not None:
                    raise HttpError(500, MSG_SAVE_FAIL, "server_error")
                data = self.encode_slot_file(slot.tokens)
                if f.fire("save_enospc", req, act) is not None:
                    try:
                        with open(path, "wb") as fh:
                            fh.write(data[:len(data) // 2])
                    except OSError:
                        pass
                    raise HttpError(500, MSG_SAVE_FAIL, "server_error")
                try:
                    with open(path, "wb") as fh:
                        fh.write(data)
                except OSError:
                    raise HttpError(500, MSG_SAVE_FAIL, "server_error")
                n_saved = len(slot.tokens)
                spec = f.fire("short_n_saved", req, act)
                if spec is not None:
                    n_saved = max(0, n_saved - int(spec.get("delta", 1)))
                return Response(200, {"id_slot": slot_idx, "filename": filename, "n_saved": n_saved,
                                      "n_written": len(data),
                                      "timings": {"save_ms": (time.time() - t0) * 1000.0}})
            if action == "restore":
                spec = f.fire("restore_400", req, act)
                if spec is not None:
                    self.clear_slot(slot)
                    raise bad_request(spec.get("message", MSG_RESTORE_FAIL))
                try:
                    with open(path, "rb") as fh:
                        data = fh.read()
                except OSError:
                    self.clear_slot(slot)
                    raise bad_request(MSG_RESTORE_FAIL)
                try:
                    tokens = self.decode_slot_file(data)
                except HttpError:
                    self.clear_slot(slot)
                    raise
                slot.tokens = tokens
                slot.restored_pending = True
                return Response(200, {"id_slot": slot_idx, "filename": filename, "n_restored": len(tokens),
                                      "n_read": len(data),
                                      "timings": {"restore_ms": (time.time() - t0) * 1000.0}})
            n = len(slot.tokens)
            self.clear_slot(slot)
            return Response(200, {"id_slot": slot_idx, "n_erased": n})

    @staticmethod
    def clear_slot(slot):
        slot.tokens = []
        slot.restored_pending = False

    def encode_slot_file(self, tokens):
        a = self.server.state.args
        doc = {"magic": "fake-ggsq", "version": 1, "kv_shape": a.kv_shape, "tokens": list(tokens)}
        if a.bytes_per_token > 0:
            doc["kv"] = "0" * (a.bytes_per_token * len(tokens))
        return json.dumps(doc, separators=(",", ":")).encode("utf-8")

    def decode_slot_file(self, data):
        a = self.server.state.args
        try:
            doc = json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise bad_request(MSG_RESTORE_FAIL)
        if not isinstance(doc, dict) or doc.get("magic") != "fake-ggsq" or doc.get("version") != 1:
            raise bad_request(MSG_RESTORE_FAIL)
        if doc.get("kv_shape") != a.kv_shape:
            raise bad_request(MSG_RESTORE_FAIL)
        toks = doc.get("tokens")
        if not isinstance(toks, list):
            raise bad_request(MSG_RESTORE_FAIL)
        if len(toks) > self.server.state.n_ctx_now():
            raise bad_request(MSG_RESTORE_FIT)
        for t in toks:
            if not isinstance(t, int) or isinstance(t, bool) or t < 0 or t >= a.n_vocab:
                raise bad_request(MSG_RESTORE_TOKENS)
        return toks

    # ---- completions ----
    def completion(self, req, kind):
        st = self.server.state
        a = st.args
        b = req.json_body()
        if kind == "oai_chat":
            prompt = apply_template(b.get("messages"), bool(b.get("add_generation_prompt", True)))
            tokens = st.tokenizer.tokenize(prompt, True, True)
        else:
            if "prompt" not in b:
                raise bad_request("\"prompt\" is required")
            p = b["prompt"]
            if isinstance(p, list) and p and all(isinstance(x, list) for x in p):
                p = p[0]  # multiple prompts: only the first is served by this fake
            if isinstance(p, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in p):
                tokens = list(p)  # token arrays are used verbatim (no BOS added)
            else:
                tokens = st.tokenizer.tokenize(p, True, True)
        for t in tokens:
            if t < 0 or t >= a.n_vocab:
                raise bad_request("invalid token id %d" % t)
        n = len(tokens)
        if n == 0:
            raise bad_request("empty prompt")
        n_predict = b.get("n_predict", b.get("max_tokens", b.get("max_completion_tokens", -1)))
        if n_predict is None:
            n_predict = -1
        n_predict = int(n_predict)
        n_gen = 1 if n_predict <= 1 else min(n_predict, 8)
        cache_prompt = b.get("cache_prompt", True)
        id_slot = b.get("id_slot", -1)
        id_slot = -1 if id_slot is None else int(id_slot)
        stream = bool(b.get("stream", False))

        with st.cond:
            n_ctx = st.n_ctx_now()
            if n >= n_ctx:
                raise HttpError(400, "the request exceeds the available context size, try increasing it",
                                "exceed_context_size_error", {"n_prompt_tokens": n, "n_ctx": n_ctx})
            while True:
                if st.shutdown_event.is_set():
                    raise HttpError(503, "shutting down", "unavailable_error")
                slot = None
                if id_slot >= 0:
                    s = st.slots[id_slot % len(st.slots)]
                    if not s.is_processing:
                        slot = s
                else:
                    idle = [s for s in st.slots if not s.is_processing]
                    if idle:
                        best, best_sim = None, 0.0
                        for s in idle:
                            sim = common_prefix(s.tokens, tokens) / float(n)
                            if sim > best_sim:
                                best, best_sim = s, sim
                        if best is not None and best_sim > a.slot_similarity:
                            slot = best
                        else:
                            slot = min(idle, key=lambda s: s.last_used)
                if slot is not None:
                    break
                st.cond.wait(0.5)
            slot.is_processing = True
            slot.has_task = True
            slot.id_task = st.next_task()
            slot.last_used = st.next_use()
            cache_n = min(common_prefix(slot.tokens, tokens), n - 1) if cache_prompt else 0
            was_restored = slot.restored_pending
            slot.restored_pending = False
            ms_per_tok = st.prefill_ms_per_token
        low = st.faults.fire("low_cache_n", req, lambda ft: was_restored or bool(ft.spec.get("always")))
        if low is not None:
            cache_n = 0
        prompt_n = n - cache_n
        t0 = time.time()
        try:
            with st.cond:
                slot.n_prompt_tokens_cache = cache_n
                slot.n_prompt_tokens_processed = 0
                # KV now holds the reused prefix; the rest is being "decoded"
                slot.tokens = slot.tokens[:cache_n]
            if ms_per_tok > 0 and prompt_n > 0:
                st.shutdown_event.wait(ms_per_tok * prompt_n / 1000.0)
            prompt_ms = max((time.time() - t0) * 1000.0, 0.001)
            x_id = st.tokenizer.piece_id("x")
            with st.cond:
                slot.tokens = list(tokens) + [x_id] * (n_gen - 1)
                slot.n_prompt_tokens_processed = prompt_n
                st.metrics["prompt_tokens_total"] += prompt_n
                st.metrics["prompt_tokens_cached_total"] += cache_n
                st.metrics["requests"] += 1
                tokens_cached = len(slot.tokens)
                build = st.build_info_now()
        finally:
            with st.cond:
                slot.is_processing = False
                st.cond.notify_all()

        predicted_ms = 0.5 * n_gen
        timings = {
            "cache_n": cache_n,
            "prompt_n": prompt_n,
            "prompt_ms": prompt_ms,
            "prompt_per_token_ms": prompt_ms / max(prompt_n, 1),
            "prompt_per_second": 1000.0 * prompt_n / prompt_ms,
            "predicted_n": n_gen,
            "predicted_ms": predicted_ms,
            "predicted_per_token_ms": predicted_ms / n_gen,
            "predicted_per_second": 1000.0 * n_gen / predicted_ms,
        }
        content = "x" * n_gen
        model = a.model_alias or a.model_path
        created = int(time.time())
        usage = {"completion_tokens": n_gen, "prompt_tokens": n, "total_tokens": n + n_gen,
                 "prompt_tokens_details": {"cached_tokens": cache_n}}
        if kind == "native":
            obj = {"index": 0, "content": content, "tokens": [], "id_slot": slot.id, "stop": True,
                   "model": model, "tokens_predicted": n_gen, "tokens_evaluated": n,
                   "generation_settings": {"n_predict": n_predict, "cache_prompt": bool(cache_prompt)},
                   "prompt": prompt_text_for(b, st), "has_new_line": False, "truncated": False,
                   "stop_type": "limit", "stopping_word": "", "tokens_cached": tokens_cached,
                   "timings": timings}
            if stream:
                first = dict(index=0, content=content, tokens=[], stop=False, id_slot=slot.id,
                             tokens_predicted=n_gen, tokens_evaluated=n)
                obj2 = dict(obj)
                obj2["content"] = ""
                return sse([first, obj2], done=False)
            return Response(200, obj)
        cid = "chatcmpl-fake%d" % slot.id_task
        if kind == "oai_cmpl":
            obj = {"choices": [{"text": content, "index": 0, "logprobs": None, "finish_reason": "length"}],
                   "created": created, "model": model, "system_fingerprint": build,
                   "object": "text_completion", "usage": usage, "id": cid, "timings": timings}
            if stream:
                return sse([obj], done=True)
            return Response(200, obj)
        obj = {"choices": [{"finish_reason": "length", "index": 0,
                            "message": {"role": "assistant", "content": content}}],
               "created": created, "model": model, "system_fingerprint": build,
               "object": "chat.completion", "usage": usage, "id": cid, "timings": timings}
        if stream:
            c1 = {"choices": [{"finish_reason": None, "index": 0, "delta": {"role": "assistant", "content": content}}],
                  "created": created, "id": cid, "model": model, "system_fingerprint": build,
                  "object": "chat.completion.chunk"}
            c2 = {"choices": [{"finish_reason": "length", "index": 0, "delta": {}}], "created": created,
                  "id": cid, "model": model, "system_fingerprint": build, "object": "chat.completion.chunk",
                  "usage": usage, "timings": timings}
            return sse([c1, c2], done=True)
        return Response(200, obj)

    # ---- control API ----
    def control(self, req):
        st = self.server.state
        r = req.route
        if r == "/__control":
            if req.method == "POST":
                b = req.json_body()
                if "faults" in b:
                    st.faults.set(b["faults"])
                if "prefill_ms_per_token" in b:
                    st.prefill_ms_per_token = float(b["prefill_ms_per_token"])
                if "loading_seconds" in b:
                    s = float(b["loading_seconds"])
                    st.loading_until = time.time() + s if s > 0 else 0.0
            elif req.method != "GET":
                raise HttpError(405, "method not allowed")
            return Response(200, {"faults": st.faults.describe(),
                                  "prefill_ms_per_token": st.prefill_ms_per_token,
                                  "loading": bool(st.loading_until and time.time() < st.loading_until)})
        if r == "/__requests" and req.method == "GET":
            since = int(req.query.get("since", "0") or 0)
            prefix = req.query.get("path")
            with st.log_lock:
                items = list(st.log[since:])
            if prefix:
                items = [e for e in items if e["route"].startswith(prefix) or e["path"].startswith(prefix)]
            return Response(200, items)
        if r == "/__reset" and req.method == "POST":
            b = req.json_body(required=False)
            if b.get("log", True):
                with st.log_lock:
                    st.log = []
            if b.get("faults", False):
                st.faults.set({})
            if b.get("slots", False):
                with st.cond:
                    for s in st.slots:
                        s.__init__(s.id, s.n_ctx)
            return Response(200, {"ok": True})
        if r == "/__state" and req.method == "GET":
            with st.cond:
                slots = [{"id": s.id, "tokens": list(s.tokens), "is_processing": s.is_processing,
                          "has_task": s.has_task, "id_task": s.id_task, "last_used": s.last_used,
                          "restored_pending": s.restored_pending} for s in st.slots]
                flipped = st.flipped
            return Response(200, {"slots": slots, "flipped": flipped, "faults": st.faults.describe()})
        raise HttpError(404, "unknown control route")


def prompt_text_for(body, st):
    p = body.get("prompt")
    if isinstance(p, str):
        return p
    if isinstance(p, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in p):
        return st.tokenizer.detokenize(p)
    return ""


def sse(objs, done):
    chunks = [("data: " + json.dumps(o, ensure_ascii=False) + "\n\n").encode("utf-8") for o in objs]
    if done:
        chunks.append(b"data: [DONE]\n\n")
    r = Response(200, raw=b"", ctype="text/event-stream")
    r.stream_chunks = chunks
    return r


# --------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------

class TCPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if VERBOSE:
            import traceback
            traceback.print_exc(file=sys.stderr)


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        if VERBOSE:
            import traceback
            traceback.print_exc(file=sys.stderr)


def parse_args(argv):
    p = argparse.ArgumentParser(description="Fake llama-server for kvwarm fault-injection tests")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 = pick a free port")
    p.add_argument("--unix", default=None, help="listen on this AF_UNIX socket path instead of TCP")
    p.add_argument("--api-key", default=None, help="comma-separated accepted keys")
    p.add_argument("--slot-save-path", default=None, help="directory for slot files (must exist)")
    p.add_argument("--slots", "-np", "--parallel", dest="slots", type=int, default=4)
    p.add_argument("--n-ctx", type=int, default=4096, help="per-slot context")
    p.add_argument("--n-ctx-train", type=int, default=131072)
    p.add_argument("--n-vocab", type=int, default=262144)
    p.add_argument("--n-embd", type=int, default=2560)
    p.add_argument("--n-params", type=int, default=3880263168)
    p.add_argument("--size", type=int, default=2489757696, help="model size in bytes")
    p.add_argument("--ftype", default="Q4_K - Medium")
    p.add_argument("--vocab-type", type=int, default=1)
    p.add_argument("--model-path", default="/models/fake-gemma-3-4b-it-Q4_K_M.gguf")
    p.add_argument("--model-alias", default=None, help="id in /v1/models (default: model path)")
    p.add_argument("--build-info", default="b0-unknown")
    p.add_argument("--chat-template", default=DEFAULT_CHAT_TEMPLATE)
    p.add_argument("--bos-token", default="<bos>")
    p.add_argument("--eos-token", default="<eos>")
    p.add_argument("--kv-shape", default="default",
                   help="stored in slot files; a restore of a file with another shape gets 400")
    p.add_argument("--bytes-per-token", type=int, default=0, help="pad slot files by this many bytes/token")
    p.add_argument("--slot-similarity", type=float, default=0.10, help="like -sps")
    p.add_argument("--prefill-ms-per-token", type=float, default=0.0)
    p.add_argument("--loading-seconds", type=float, default=0.0, help="report 'Loading model' for s seconds at start")
    p.add_argument("--no-slots", action="store_true", help="GET /slots -> 501")
    p.add_argument("--metrics", action="store_true", help="enable GET /metrics")
    p.add_argument("--faults", default=None, help="initial faults as JSON, or @file")
    p.add_argument("--verbose", "-v", action="store_true")
    args = p.parse_args(argv)
    if args.slots < 1:
        p.error("--slots must be >= 1")
    if args.n_vocab <= FIRST_NORMAL_ID:
        p.error("--n-vocab must be > %d" % FIRST_NORMAL_ID)
    if args.slot_save_path is not None and not os.path.isdir(args.slot_save_path):
        p.error("--slot-save-path: not a directory: %s" % args.slot_save_path)
    return args


def main(argv=None):
    global VERBOSE
    args = parse_args(sys.argv[1:] if argv is None else argv)
    VERBOSE = args.verbose
    state = State(args)
    if args.faults:
        text = args.faults
        if text.startswith("@"):
            with open(text[1:]) as fh:
                text = fh.read()
        try:
            state.faults.set(json.loads(text))
        except (ValueError, HttpError) as e:
            sys.stderr.write("invalid --faults: %s\n" % (getattr(e, "message", None) or e))
            return 2

    if args.unix:
        path = args.unix
        try:
            if os.path.exists(path) and not os.path.isdir(path):
                os.unlink(path)
        except OSError:
            pass
        server = UnixServer(path, Handler)
        where = path
    else:
        server = TCPServer((args.host, args.port), Handler)
        where = str(server.server_address[1])
    server.state = state

    def on_signal(signum, frame):
        state.shutdown_event.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sys.stdout.write("LISTENING %s\n" % where)
    sys.stdout.flush()
    vlog("listening on %s" % where)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        state.shutdown_event.set()
        server.server_close()
        if args.unix:
            try:
                os.unlink(args.unix)
            except OSError:
                pass
        vlog("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
