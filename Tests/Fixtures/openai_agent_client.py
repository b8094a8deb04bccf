#!/usr/bin/env python3
"""Sends agent requests to llama-server with the real openai client and prints its cache figures.

Run with the test venv's python (KVWARM_TEST_PYTHON, made by .ci/provision):

    openai_agent_client.py --base-url http://127.0.0.1:PORT [--api-key-file F]
                           --request BODY.json --message TEXT [--message TEXT ...]

BODY.json is an OpenAI chat-completions request body, fully expanded, whose last
user message holds the placeholder <{message}> exactly once (in its string
content or in one of its text parts). For each --message, in order and each as a
new conversation, the placeholder is replaced by the message (in the decoded
JSON, so any text is escaped right) and the body is sent through
OpenAI(...).chat.completions.create: the fields the client has parameters for
(model, messages, tools, tool_choice, temperature, ...) as those parameters, every
other field (chat_template_kwargs, ...) in extra_body with "cache_prompt": true.
max_tokens defaults to 1 and temperature to 0, model to "test".

Prints one JSON line per message:
    {"message": TEXT, "cache_n": N, "prompt_n": N, "cached_tokens": N or null}
from llama-server's "timings" and the usage's prompt_tokens_details. Exits 1 with
a message on stderr on any error (the HTTP status and body included), 2 on bad
arguments or a body without exactly one placeholder.
"""

import argparse
import copy
import inspect
import json
import sys

PLACEHOLDER = "<{message}>"
# create() parameters that are the client's own options, not request fields
CLIENT_OPTIONS = {"extra_headers", "extra_query", "extra_body", "timeout"}


def fail(message, code=1):
    print(f"openai_agent_client: {message}", file=sys.stderr)
    sys.exit(code)


def last_user_message(body):
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        fail("request body has no 'messages' list", 2)
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            return message
    fail("request body has no user message", 2)


def check_placeholder(body):
    """Fails unless the last user message holds the placeholder exactly once."""
    content = last_user_message(body).get("content")
    if isinstance(content, str):
        count = content.count(PLACEHOLDER)
    elif isinstance(content, list):
        count = sum(part.get("text", "").count(PLACEHOLDER) for part in content
                    if isinstance(part, dict) and part.get("type") == "text"
                    and isinstance(part.get("text"), str))
    else:
        fail("the last user message has no string or text-part content", 2)
    if count != 1:
        fail(f"the last user message holds the placeholder {PLACEHOLDER} {count} times, "
             "not exactly once", 2)


def with_message(body, text):
    """A deep copy of body with the placeholder replaced by text."""
    body = copy.deepcopy(body)
    message = last_user_message(body)
    content = message["content"]
    if isinstance(content, str):
        message["content"] = content.replace(PLACEHOLDER, text, 1)
    else:
        for part in content:
            if (isinstance(part, dict) and part.get("type") == "text"
                    and isinstance(part.get("text"), str) and PLACEHOLDER in part["text"]):
                part["text"] = part["text"].replace(PLACEHOLDER, text, 1)
                break
    return body


def split_body(body, known):
    """(keyword arguments for create(), extra_body) for one request body."""
    if body.get("stream"):
        fail("the request body asks for \"stream\": true; this client reads whole responses", 2)
    kwargs = {"model": "test"}
    extra = {"cache_prompt": True}
    for key, value in body.items():
        if key == "stream":
            continue
        if key in known:
            kwargs[key] = value
        else:
            extra[key] = value
    if not any(k in body for k in ("max_tokens", "max_completion_tokens", "n_predict")):
        kwargs["max_tokens"] = 1
    kwargs.setdefault("temperature", 0)
    return kwargs, extra


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True, help="llama-server's (or kvwarm's proxy's) URL, without /v1")
    parser.add_argument("--api-key-file", help="file holding the API key (default: the key 'no-key')")
    parser.add_argument("--request", required=True, help="chat-completions request body (JSON)")
    parser.add_argument("--message", action="append", required=True,
                        help="text for the placeholder; repeat for more requests")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per request (default 300)")
    args = parser.parse_args()

    try:
        import openai
    except ImportError as e:
        fail(f"cannot import openai ({e}); run this with the venv's python (KVWARM_TEST_PYTHON)")

    try:
        with open(args.request, encoding="utf-8") as f:
            body = json.load(f)
    except (OSError, ValueError) as e:
        fail(f"cannot read the request body {args.request}: {e}", 2)
    if not isinstance(body, dict):
        fail(f"the request body {args.request} is not a JSON object", 2)
    check_placeholder(body)

    key = None
    if args.api_key_file:
        try:
            with open(args.api_key_file, encoding="utf-8") as f:
                key = f.read().strip()
        except OSError as e:
            fail(f"cannot read the API key file: {e}", 2)

    client = openai.OpenAI(base_url=args.base_url.rstrip("/") + "/v1", api_key=key or "no-key",
                           max_retries=0, timeout=args.timeout)
    create = client.chat.completions.create
    known = set(inspect.signature(create).parameters) - CLIENT_OPTIONS

    for text in args.message:
        kwargs, extra = split_body(with_message(body, text), known)
        try:
            resp = create(**kwargs, extra_body=extra)
        except openai.APIStatusError as e:
            fail(f"HTTP {e.status_code} from {e.request.url} for message {text!r}: {e.response.text}")
        except openai.APIConnectionError as e:
            cause = f" ({type(e.__cause__).__name__}: {e.__cause__})" if e.__cause__ else ""
            fail(f"cannot reach {client.base_url} for message {text!r}: {e}{cause}")
        except openai.APIError as e:
            fail(f"request for message {text!r} failed: {type(e).__name__}: {e}")
        except Exception as e:  # noqa: BLE001 - any failure is reported and ends the run
            fail(f"request for message {text!r} failed: {type(e).__name__}: {e}")

        timings = (resp.model_extra or {}).get("timings")
        if not isinstance(timings, dict) or "cache_n" not in timings or "prompt_n" not in timings:
            fail(f"the response for message {text!r} has no timings.cache_n/prompt_n "
                 f"(is this llama-server?): {resp.model_dump_json()[:500]}")
        details = resp.usage.prompt_tokens_details if resp.usage else None
        cached = details.cached_tokens if details is not None else None
        print(json.dumps({"message": text, "cache_n": timings["cache_n"],
                          "prompt_n": timings["prompt_n"], "cached_tokens": cached}), flush=True)


if __name__ == "__main__":
    main()
