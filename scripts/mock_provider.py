"""Mock LLM provider (OpenAI + Anthropic wire formats) for tests and benchmarks.

Standard library only, loopback only. The official SDKs work against it
unchanged (point ``base_url`` at it), streaming included.

Command line::

    python scripts/mock_provider.py [--host 127.0.0.1] [--port 0]
                                    [--latency-ms 0] [--chunk-delay-ms 0]

prints ``READY http://127.0.0.1:<port>`` once listening and runs until
SIGTERM/SIGINT. From Python::

    server, base_url = start(port=0)   # serves in a daemon thread
    ...
    server.shutdown()

Provider endpoints (recorded; chat, messages and responses also consume the script):
    POST /v1/chat/completions   (also /chat/completions, /openai/v1/chat/completions)
    POST /v1/messages           (also /messages)
    POST /v1/responses          (also /responses; OpenAI's Responses API)
    GET  /v1/models
    POST /v1/files              (OpenAI's file upload: multipart, answers the file object; nothing is kept)

The reply is always "Mock reply to: " + the first 60 characters of the last
user message; tokens are counted as whitespace-separated words (+4 per
prompt message).

Test control (no auth, JSON):
    GET    /_mock/health     -> {"ok": true}
    GET    /_mock/requests   -> every provider request, oldest first
    DELETE /_mock/requests   -> clears the request log and the script
    POST   /_mock/script     -> append a list of actions to a FIFO queue

Each chat/messages request pops the first queued action whose optional
"model" matches the requested model. Action keys (combinable):
    {"status": 503, "headers": {...}, "body": {...}}  provider-format error
    {"delay_ms": 200}     sleep before answering
    {"reset": true}       close the connection abruptly (TCP RST), no response
    {"hang": true}        never answer (until client leaves or server stops)
    {"usage": {...}}      deep-merged into the success usage (stream too)
    {"headers": {...}}    without "status": added to the success answer's headers
    {"chunk_delay_ms": 20}  a stream waits this long before each event after its first (instead of --chunk-delay-ms)
    {"cut_after": 3}      a stream breaks off (TCP RST) after its first 3 events
    {"model": "x"}        only applies to requests for model "x"
    {"any_auth": true}    any credential (or none) is accepted, as by an upstream behind Basic auth or a raw token
    {"huge_body_bytes": N}  (chat) the reply is N "~" characters: JSON in 1 MiB writes, or a stream of
                          16 KiB deltas; usage says N // 4 completion tokens
    {"chunked": true}     with huge_body_bytes: a JSON answer without Content-Length (chunked)
    {"insert_raw": "s", "insert_raw_times": 1}  a stream sends "s" * times (in 64 KiB chunks) after its
                          first event, as is (unterminated or malformed events)
"""

import argparse
import gzip
import ipaddress
import json
import re
import select
import signal
import socket
import struct
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPENAI_PATHS = {"/v1/chat/completions", "/chat/completions", "/openai/v1/chat/completions"}
ANTHROPIC_PATHS = {"/v1/messages", "/messages"}
RESPONSES_PATHS = {"/v1/responses", "/responses"}
MODELS_PATHS = {"/v1/models", "/models"}
FILES_PATHS = {"/v1/files", "/files"}
MODEL_SNAPSHOTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-08-06"}
LISTED_MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest", "claude-sonnet-4-20250514"]


# ---------------------------------------------------------------- content helpers

def text_of(content) -> str:
    """Text of a message content: a string or a list of {"type": "text"} parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(p.get("text", "") for p in content
                        if isinstance(p, dict) and p.get("type") == "text")
    return ""


def count_words(text: str) -> int:
    return len(text.split())


def prompt_tokens(messages: list, system=None) -> int:
    words = sum(count_words(text_of(m.get("content"))) for m in messages if isinstance(m, dict))
    return words + 4 * len(messages) + count_words(text_of(system))


def reply_for(messages: list) -> str:
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    last = text_of(users[-1].get("content")) if users else ""
    return "Mock reply to: " + last[:60]


def pieces(reply: str) -> list:
    """One piece per word, each keeping its trailing whitespace ("".join == reply)."""
    return re.findall(r"\S+\s*", reply)


def deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def rfc3339(seconds_from_now: float) -> str:
    moment = datetime.now(UTC) + timedelta(seconds=seconds_from_now)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# ---------------------------------------------------------------- error bodies

def openai_error(status: int, message: str) -> dict:
    kind = ("rate_limit_error" if status == 429 else
            "server_error" if status >= 500 else "invalid_request_error")
    code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def anthropic_error(status: int, message: str) -> dict:
    kinds = {401: "authentication_error", 403: "permission_error", 404: "not_found_error",
             413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
    kind = kinds.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": kind, "message": message}}


ERROR_BODIES = {"openai": openai_error, "anthropic": anthropic_error, "responses": openai_error}


def has_bearer(headers) -> bool:
    auth = headers.get("Authorization", "")
    return auth.startswith("Bearer ") and bool(auth[7:].strip())


def openai_problem(headers, request, required=("model", "messages")):
    """(status, message) if the OpenAI request (chat, or Responses with its own `required`) must be refused."""
    if not has_bearer(headers):
        return 401, "Incorrect API key provided. You must pass 'Authorization: Bearer <key>'."
    if request is None:
        return 400, "We could not parse the JSON body of your request."
    for field in required:
        if field not in request:
            return 400, f"Missing required parameter: '{field}'."
    if "messages" in required and not isinstance(request["messages"], list):
        return 400, "Invalid type for 'messages': expected an array."
    return None


def anthropic_problem(headers, request):
    """(status, message) if the Anthropic request must be refused, else None."""
    if not headers.get("x-api-key") and not has_bearer(headers):
        return 401, "invalid x-api-key"
    if request is None:
        return 400, "The request body is not valid JSON."
    for field in ("model", "max_tokens", "messages"):
        if field not in request:
            return 400, f"{field}: Field required"
    if not isinstance(request["messages"], list):
        return 400, "messages: Input should be a valid list"
    return None


# ---------------------------------------------------------------- state and server

class MockState:
    """Request log, action script and id counter, shared by all handler threads."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.script = []
        self.counter = 0

    def next_id(self) -> int:
        with self.lock:
            self.counter += 1
            return self.counter

    def record(self, entry: dict) -> None:
        with self.lock:
            self.requests.append(entry)

    def pop_action(self, model) -> dict:
        with self.lock:
            for i, action in enumerate(self.script):
                if "model" not in action or action["model"] == model:
                    return self.script.pop(i)
        return {}


class MockServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's default backlog of 5 refuses bursts of new connections a provider takes

    def __init__(self, host, port, latency_ms=0, chunk_delay_ms=0):
        if ":" in host:
            self.address_family = socket.AF_INET6
        self.state = MockState()
        self.stopping = threading.Event()
        self.latency_ms = latency_ms
        self.chunk_delay_ms = chunk_delay_ms
        super().__init__((host, port), MockHandler)

    def shutdown(self):
        self.stopping.set()  # releases hanging handlers
        super().shutdown()

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError):  # clients may vanish; fine
            super().handle_error(request, client_address)


class MockHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; without this, delayed ACKs add 40 ms
    server: MockServer

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def _dispatch(self):
        self.started = time.monotonic()
        path = self.path.split("?", 1)[0]
        self._route(self.command, path, self._read_body())

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    def _route(self, method, path, body):
        state = self.server.state
        if path in OPENAI_PATHS | ANTHROPIC_PATHS | RESPONSES_PATHS | MODELS_PATHS | FILES_PATHS:
            state.record({"method": method, "path": self.path,
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": parse_body(body), "time": time.time()})
        if method == "POST" and path in OPENAI_PATHS:
            self._provider("openai", body)
        elif method == "POST" and path in ANTHROPIC_PATHS:
            self._provider("anthropic", body)
        elif method == "POST" and path in RESPONSES_PATHS:
            self._provider("responses", body)
        elif method == "GET" and path in MODELS_PATHS:
            self._send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}
                for m in LISTED_MODELS]})
        elif method == "POST" and path in FILES_PATHS:
            self._file_upload(body)
        elif method == "GET" and path == "/_mock/health":
            self._send_json(200, {"ok": True})
        elif method == "GET" and path == "/_mock/requests":
            with state.lock:
                requests = list(state.requests)
            self._send_json(200, requests)
        elif method == "DELETE" and path == "/_mock/requests":
            with state.lock:
                state.requests.clear()
                state.script.clear()
            self._send_json(200, {"ok": True})
        elif method == "POST" and path == "/_mock/script":
            self._add_script(parse_body(body))
        else:
            self._send_json(404, {"error": {"message": f"Not found: {method} {path}",
                                            "type": "not_found"}})

    def _file_upload(self, body):
        """OpenAI's `POST /v1/files` answer: the file object (multipart fields read loosely; the file is not kept)."""
        if not has_bearer(self.headers):
            return self._send_json(401, openai_error(401, "Incorrect API key provided."))
        text = body.decode("utf-8", "replace")
        filename = re.search(r'name="file"; filename="([^"]*)"', text)
        purpose = re.search(r'name="purpose"\r\n\r\n([^\r]*)', text)
        self._send_json(200, {"id": f"file-mock{self.server.state.next_id()}", "object": "file", "bytes": len(body),
                              "created_at": int(time.time()), "filename": filename.group(1) if filename else "upload",
                              "purpose": purpose.group(1) if purpose else "assistants", "status": "processed"})

    def _add_script(self, actions):
        if isinstance(actions, dict):
            actions = [actions]
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            self._send_json(400, {"error": {"message": "expected a JSON list of action objects"}})
            return
        with self.server.state.lock:
            self.server.state.script.extend(actions)
            queued = len(self.server.state.script)
        self._send_json(200, {"ok": True, "queued": queued})

    # ------------------------------------------------------------ provider requests

    def _provider(self, kind, body):
        request = parse_body(body)
        request = request if isinstance(request, dict) else None
        self.number = self.server.state.next_id()
        action = self.server.state.pop_action(request.get("model") if request else None)
        self.cut_after = action.get("cut_after")
        self.action = action
        delay_ms = self.server.latency_ms + action.get("delay_ms", 0)
        if delay_ms:
            time.sleep(delay_ms / 1000)
        if action.get("reset"):
            return self._reset()
        if action.get("hang"):
            return self._hang()
        if "status" in action:
            status = int(action["status"])
            error = action["body"] if "body" in action else ERROR_BODIES[kind](
                status, f"Mock scripted error (HTTP {status})")
            headers = {**self._limit_headers(kind, 0), **action.get("headers", {})}
            return self._send_json(status, error, headers)
        problems = {"openai": openai_problem, "anthropic": anthropic_problem,
                    "responses": lambda headers, request: openai_problem(headers, request, ("model", "input"))}
        problem = None if action.get("any_auth") and request is not None else problems[kind](self.headers, request)
        if problem:
            status, message = problem
            return self._send_json(status, ERROR_BODIES[kind](status, message),
                                   self._limit_headers(kind, 0))
        answers = {"openai": self._answer_openai, "anthropic": self._answer_anthropic,
                   "responses": self._answer_responses}
        answers[kind](request, action.get("usage", {}), action.get("headers", {}))

    def _answer_openai(self, request, usage_extra, extra_headers):
        messages = request["messages"]
        reply = reply_for(messages)
        huge_bytes = self.action.get("huge_body_bytes")
        completion = huge_bytes // 4 if huge_bytes else count_words(reply)
        usage = openai_usage(prompt_tokens(messages), completion, usage_extra)
        headers = {**self._limit_headers("openai", usage["prompt_tokens"]), **extra_headers}
        base = {"id": f"chatcmpl-mock{self.number}", "object": "chat.completion",
                "created": int(time.time()),
                "model": MODEL_SNAPSHOTS.get(request["model"], request["model"]),
                "system_fingerprint": "fp_mock"}
        if not request.get("stream"):
            message = {"role": "assistant", "content": "~" if huge_bytes else reply, "refusal": None}
            choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            answer = {**base, "choices": [choice], "usage": usage, "service_tier": "default"}
            if huge_bytes:
                return self._send_huge_json(answer, huge_bytes, headers)
            return self._send_json(200, answer, headers)
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        if huge_bytes:
            reply = "~" * huge_bytes
        events = [sse(None, data) for data in
                  openai_chunks(base, reply, usage if include_usage else None, 16384 if huge_bytes else None)]
        self._stream(events + [b"data: [DONE]\n\n"], headers)

    def _answer_anthropic(self, request, usage_extra, extra_headers):
        messages = request["messages"]
        reply = reply_for(messages)
        usage = deep_merge({"input_tokens": prompt_tokens(messages, request.get("system")),
                            "output_tokens": count_words(reply),
                            "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
                           usage_extra)
        headers = {**self._limit_headers("anthropic", usage["input_tokens"]), **extra_headers}
        message = {"id": f"msg_mock{self.number}", "type": "message", "role": "assistant",
                   "model": request["model"], "content": [{"type": "text", "text": reply}],
                   "stop_reason": "end_turn", "stop_sequence": None, "usage": usage}
        if not request.get("stream"):
            return self._send_json(200, message, headers)
        self._stream([sse(data["type"], data) for data in anthropic_events(message)], headers)

    def _answer_responses(self, request, usage_extra, extra_headers):
        messages = responses_messages(request)
        reply = reply_for(messages)
        usage = deep_merge({"input_tokens": prompt_tokens(messages, request.get("instructions")),
                            "input_tokens_details": {"cached_tokens": 0},
                            "output_tokens": count_words(reply),
                            "output_tokens_details": {"reasoning_tokens": 0}}, usage_extra)
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        headers = {**self._limit_headers("openai", usage["input_tokens"]), **extra_headers}
        item = {"id": f"msg_mock{self.number}", "type": "message", "status": "completed", "role": "assistant",
                "content": [{"type": "output_text", "text": reply, "annotations": []}]}
        response = {"id": f"resp_mock{self.number}", "object": "response", "created_at": int(time.time()),
                    "status": "completed", "model": MODEL_SNAPSHOTS.get(request["model"], request["model"]),
                    "output": [item], "usage": usage, "error": None, "incomplete_details": None,
                    "instructions": request.get("instructions"), "parallel_tool_calls": True,
                    "tool_choice": "auto", "tools": [], "text": {"format": {"type": "text"}}, "metadata": {}}
        if not request.get("stream"):
            return self._send_json(200, response, headers)
        self._stream([sse(data["type"], data) for data in responses_events(response, reply)], headers)

    def _limit_headers(self, kind, tokens):
        remaining = str(max(0, 10000 - self.number))
        elapsed_ms = str(int((time.monotonic() - self.started) * 1000))
        if kind == "openai":
            return {"x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": remaining,
                    "x-ratelimit-reset-requests": "6ms", "x-ratelimit-limit-tokens": "200000",
                    "x-ratelimit-remaining-tokens": str(max(0, 200000 - tokens)),
                    "x-ratelimit-reset-tokens": "1ms", "x-request-id": f"req_{uuid.uuid4().hex}",
                    "openai-processing-ms": elapsed_ms}
        headers = {"request-id": f"req_mock{uuid.uuid4().hex[:24]}",
                   "anthropic-ratelimit-requests-limit": "10000",
                   "anthropic-ratelimit-requests-remaining": remaining,
                   "anthropic-ratelimit-requests-reset": rfc3339(1)}
        for name, limit, used in (("tokens", 400000, tokens), ("input-tokens", 200000, tokens),
                                  ("output-tokens", 80000, 0)):
            headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(max(0, limit - used))
            headers[f"anthropic-ratelimit-{name}-reset"] = rfc3339(1)
        return headers

    # ------------------------------------------------------------ connection handling

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":  # as an HTTP front end of a provider does
            body = gzip.decompress(body)
        return body

    def _send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    def _send_huge_json(self, answer, huge_bytes, headers):
        """`answer` with its one "~" reply grown to `huge_bytes` of "~", written 1 MiB at a time."""
        head, tail = json.dumps(answer).encode().split(b'"~"', 1)
        head += b'"'
        tail = b'"' + tail
        chunked = bool(self.action.get("chunked"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(len(head) + huge_bytes + len(tail)))
        for name, value in headers.items():
            self.send_header(name, str(value))
        self.end_headers()
        piece = b"~" * (1 << 20)
        parts = [head] + [piece] * (huge_bytes // len(piece)) + [piece[:huge_bytes % len(piece)], tail]
        for part in parts:
            if part:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part) if chunked else part)
        if chunked:
            self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _raw_insert(self):
        """The bytes an `insert_raw` action sends after a stream's first event, in 64 KiB chunks."""
        raw = (self.action.get("insert_raw", "") * int(self.action.get("insert_raw_times", 1))).encode()
        return [raw[i:i + 65536] for i in range(0, len(raw), 65536)]

    def _stream(self, events, headers):
        """Send events as a chunked text/event-stream, one flushed chunk each."""
        if self.action.get("insert_raw"):
            events = events[:1] + self._raw_insert() + events[1:]
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        chunk_delay_ms = self.action.get("chunk_delay_ms", self.server.chunk_delay_ms)
        for i, event in enumerate(events):
            if i == self.cut_after:
                return self._reset()
            if i and chunk_delay_ms:
                time.sleep(chunk_delay_ms / 1000)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _reset(self):
        """Abort the connection with a TCP RST (SO_LINGER 0), sending nothing."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def _hang(self):
        """Send nothing until the client disconnects or the server stops."""
        while not self.server.stopping.is_set():
            readable, _, _ = select.select([self.connection], [], [], 0.1)
            try:
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    break  # client closed
            except OSError:
                break
            if readable:
                time.sleep(0.1)  # client sent more data; keep ignoring it
        self.close_connection = True


# ---------------------------------------------------------------- wire-format builders

def parse_body(body: bytes):
    """Parsed JSON, or the raw text if the body is not JSON."""
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: the provider says 400
        return text


def sse(event, data) -> bytes:
    prefix = f"event: {event}\n" if event else ""
    return f"{prefix}data: {json.dumps(data)}\n\n".encode()


def openai_usage(prompt, completion, extra) -> dict:
    usage = {"prompt_tokens": prompt, "completion_tokens": completion,
             "total_tokens": prompt + completion,
             "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
             "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                           "accepted_prediction_tokens": 0,
                                           "rejected_prediction_tokens": 0}}
    deep_merge(usage, extra)
    if "total_tokens" not in extra:
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    return usage


def openai_chunks(base, reply, usage, piece_chars=None):
    """chat.completion.chunk objects; usage=None means include_usage was not requested. The reply comes word by
    word, or in pieces of `piece_chars`."""
    def chunk(delta, finish_reason=None):
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        data = {**base, "object": "chat.completion.chunk", "choices": [choice]}
        return {**data, "usage": None} if usage else data

    chunks = [chunk({"role": "assistant", "content": ""})]
    parts = pieces(reply) if piece_chars is None else [reply[i:i + piece_chars]
                                                         for i in range(0, len(reply), piece_chars)]
    chunks += [chunk({"content": piece}) for piece in parts]
    chunks.append(chunk({}, "stop"))
    if usage:
        chunks.append({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage})
    return chunks


def responses_messages(request):
    """The Responses `input` (a string or a list of items) as chat-style messages."""
    items = request["input"]
    if isinstance(items, str):
        return [{"role": "user", "content": items}]
    return [i for i in items if isinstance(i, dict) and i.get("role")] if isinstance(items, list) else []


def responses_events(response, reply):
    """The Responses streaming event sequence for a finished response, word by word."""
    item = response["output"][0]
    where = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    start = {**response, "status": "in_progress", "output": [], "usage": None}
    events = [{"type": "response.created", "response": start},
              {"type": "response.in_progress", "response": start},
              {"type": "response.output_item.added", "output_index": 0,
               "item": {**item, "status": "in_progress", "content": []}},
              {"type": "response.content_part.added", **where,
               "part": {"type": "output_text", "text": "", "annotations": []}}]
    events += [{"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []}
               for piece in pieces(reply)]
    events += [{"type": "response.output_text.done", **where, "text": reply, "logprobs": []},
               {"type": "response.content_part.done", **where, "part": item["content"][0]},
               {"type": "response.output_item.done", "output_index": 0, "item": item},
               {"type": "response.completed", "response": response}]
    return [{**event, "sequence_number": number} for number, event in enumerate(events)]


def anthropic_events(message):
    """The Messages streaming event sequence for a finished message."""
    start_usage = {**message["usage"], "output_tokens": 1}
    start = {**message, "content": [], "stop_reason": None, "usage": start_usage}
    events = [{"type": "message_start", "message": start},
              {"type": "content_block_start", "index": 0,
               "content_block": {"type": "text", "text": ""}},
              {"type": "ping"}]
    events += [{"type": "content_block_delta", "index": 0,
                "delta": {"type": "text_delta", "text": piece}}
               for piece in pieces(message["content"][0]["text"])]
    events += [{"type": "content_block_stop", "index": 0},
               {"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]}},
               {"type": "message_stop"}]
    return events


# ---------------------------------------------------------------- entry points

def require_loopback(host: str) -> None:
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"refusing to bind non-loopback host {host!r}; use 127.0.0.1")


def start(host="127.0.0.1", port=0, latency_ms=0, chunk_delay_ms=0):
    """Start the mock in a daemon thread; returns (server, base_url)."""
    require_loopback(host)
    server = MockServer(host, port, latency_ms, chunk_delay_ms)
    threading.Thread(target=server.serve_forever, name="mock-provider", daemon=True).start()
    bound_host, bound_port = server.server_address[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    return server, f"http://{shown}:{bound_port}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Mock OpenAI/Anthropic provider (loopback only).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=int, default=0, help="delay before each answer")
    parser.add_argument("--chunk-delay-ms", type=int, default=0, help="delay between streamed events")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server, base_url = start(args.host, args.port, args.latency_ms, args.chunk_delay_ms)
    except (ValueError, OSError) as exc:
        sys.exit(f"mock_provider: {exc}")
    print(f"READY {base_url}", flush=True)
    stop.wait()
    server.shutdown()
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
