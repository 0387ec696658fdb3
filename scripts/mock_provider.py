"""Mock LLM provider (the providers' wire formats: mock_apis/, one module per API) for tests and benchmarks.

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

Provider endpoints (recorded; the APIs of mock_apis/ also consume the script):
    POST /v1/chat/completions   (also /chat/completions, /openai/v1/chat/completions)
    POST /v1/messages           (also /messages)
    POST /v1/responses          (also /responses; OpenAI's Responses API)
    POST /v1/embeddings         (also /embeddings; floats, or base64 when asked)
    POST /v1/completions        (also /completions; OpenAI's legacy Completions)
    GET  /v1/models
    POST /v1/files              (OpenAI's file upload: multipart, answers the file object; nothing is kept)

The reply is always "Mock reply to: " + the first 60 characters of the last
user message; tokens are counted as whitespace-separated words (+4 per
prompt message) (mock_apis/base.py).

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
    (an API's own keys: see its module in mock_apis/, e.g. openai_chat's huge_body_bytes)
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from mock_apis import api_for  # beside this script
from mock_apis.base import has_bearer, openai_error

MODELS_PATHS = {"/v1/models", "/models"}
FILES_PATHS = {"/v1/files", "/files"}
LISTED_MODELS = ["gpt-4o-mini", "gpt-4o", "claude-3-5-haiku-latest", "claude-sonnet-4-20250514"]


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
        api = api_for(method, path)
        if api is not None or path in MODELS_PATHS | FILES_PATHS:
            state.record({"method": method, "path": self.path,
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": parse_body(body), "time": time.time()})
        if api is not None:
            self._provider(api, body)
        elif method == "GET" and path in MODELS_PATHS:
            self.send_json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "mock"}
                for m in LISTED_MODELS]})
        elif method == "POST" and path in FILES_PATHS:
            self._file_upload(body)
        elif method == "GET" and path == "/_mock/health":
            self.send_json(200, {"ok": True})
        elif method == "GET" and path == "/_mock/requests":
            with state.lock:
                requests = list(state.requests)
            self.send_json(200, requests)
        elif method == "DELETE" and path == "/_mock/requests":
            with state.lock:
                state.requests.clear()
                state.script.clear()
            self.send_json(200, {"ok": True})
        elif method == "POST" and path == "/_mock/script":
            self._add_script(parse_body(body))
        else:
            self.send_json(404, {"error": {"message": f"Not found: {method} {path}",
                                            "type": "not_found"}})

    def _file_upload(self, body):
        """OpenAI's `POST /v1/files` answer: the file object (multipart fields read loosely; the file is not kept)."""
        if not has_bearer(self.headers):
            return self.send_json(401, openai_error(401, "Incorrect API key provided."))
        text = body.decode("utf-8", "replace")
        filename = re.search(r'name="file"; filename="([^"]*)"', text)
        purpose = re.search(r'name="purpose"\r\n\r\n([^\r]*)', text)
        self.send_json(200, {"id": f"file-mock{self.server.state.next_id()}", "object": "file", "bytes": len(body),
                              "created_at": int(time.time()), "filename": filename.group(1) if filename else "upload",
                              "purpose": purpose.group(1) if purpose else "assistants", "status": "processed"})

    def _add_script(self, actions):
        if isinstance(actions, dict):
            actions = [actions]
        if not isinstance(actions, list) or not all(isinstance(a, dict) for a in actions):
            self.send_json(400, {"error": {"message": "expected a JSON list of action objects"}})
            return
        with self.server.state.lock:
            self.server.state.script.extend(actions)
            queued = len(self.server.state.script)
        self.send_json(200, {"ok": True, "queued": queued})

    # ------------------------------------------------------------ provider requests

    def _provider(self, api, body):
        request = parse_body(body)
        request = request if isinstance(request, dict) else None
        self.api = api
        self.number = self.server.state.next_id()
        action = self.server.state.pop_action(api.model(self, request))
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
            error = action["body"] if "body" in action else api.error(status, f"Mock scripted error (HTTP {status})")
            return self.send_json(status, error, {**self.limit_headers(0), **action.get("headers", {})})
        problem = None if action.get("any_auth") and request is not None else api.problem(self, request)
        if problem:
            status, message = problem
            return self.send_json(status, api.error(status, message), self.limit_headers(0))
        api.answer(self, request, action.get("usage", {}), action.get("headers", {}))

    def limit_headers(self, tokens):
        """The rate-limit headers of this call's answer, in its API's form, `tokens` counted against the limit."""
        return self.api.limit_headers(self.number, tokens, self.started)

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

    def send_json(self, status, obj, headers=None):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, str(value))
        self.end_headers()
        self.wfile.write(data)

    def send_huge_json(self, answer, huge_bytes, headers):
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

    def stream(self, events, headers):
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


# ---------------------------------------------------------------- bodies

def parse_body(body: bytes):
    """Parsed JSON, or the raw text if the body is not JSON."""
    text = body.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested too deep to parse: the provider says 400
        return text


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
