"""Client connections that send no request are closed after `limits.client_idle_timeout_s`; calls are never cut by it.

The attack this answers: a thousand half-sent requests held every file descriptor, so valid calls timed out and the
log filled with errors. Here a thousand such connections are closed within seconds, a call made meanwhile succeeds,
and the log says so in a handful of lines.
"""

from __future__ import annotations

import http.client
import json
import selectors
import socket
import threading
import time

import openai
import pytest

from conftest import start_gateway, start_mock_provider, stop

IDLE_S = 1


@pytest.fixture(scope="module")
def idle_mock():
    mock = start_mock_provider()
    yield mock
    stop(mock.process)


# A mitmproxy script that holds the gateway's event loop, as a burst of work does on a busy machine.
BUSY_LOOP_SCRIPT = """
import time

def requestheaders(flow):
    if flow.request.path == "/_test/hold-the-loop":
        time.sleep(2.0)
"""


@pytest.fixture(scope="module")
def idle_gateway(tmp_path_factory, idle_mock):
    """A gateway that closes connections idle for 1 s (and whose loop a test can hold busy)."""
    workdir = tmp_path_factory.mktemp("idle")
    script = workdir / "busy_loop.py"
    script.write_text(BUSY_LOOP_SCRIPT)
    gw = start_gateway(workdir, idle_mock, {"limits": {"client_idle_timeout_s": IDLE_S}}, args=("--", "-s", str(script)))
    yield gw
    gw.stop()


def idle_lines(gw, since: int = 0) -> list[str]:
    return [line for line in gw.output()[since:].splitlines() if "sent no request in" in line]


def test_a_client_that_hung_up_while_the_gateway_was_busy_is_not_reported_as_idle(idle_gateway):
    """A client that connects and leaves at once (a port check) is gone, not idle, even when the gateway's loop was
    too busy to see it leave before its idle second was up. First in the module: no idle line was logged before."""
    gw = idle_gateway
    assert not idle_lines(gw)
    leaving = socket.create_connection(("127.0.0.1", gw.gateway_port))
    time.sleep(0.3)  # accepted: its idle clock runs
    holder = http.client.HTTPConnection("127.0.0.1", gw.gateway_port, timeout=15)
    held_at = time.monotonic()
    holder.request("GET", "/_test/hold-the-loop")  # the loop is held 2 s from here
    time.sleep(0.3)
    leaving.close()  # within its idle second, while the loop cannot see it
    holder.getresponse().read()  # the loop is free again: the hang-up and the overdue clock are seen together
    holder.close()
    assert time.monotonic() - held_at >= 1.9, "the script did not hold the loop: the test proves nothing"
    time.sleep(IDLE_S + 0.5)
    assert not idle_lines(gw), "a connection the client had closed was reported as idle"


def wait_closed(sockets: list[socket.socket], timeout_s: float) -> list[socket.socket]:
    """Wait until the gateway has closed each socket (EOF or reset); the ones still open at the deadline."""
    selector = selectors.DefaultSelector()
    for s in sockets:
        s.setblocking(False)
        selector.register(s, selectors.EVENT_READ)
    open_ = set(sockets)
    deadline = time.monotonic() + timeout_s
    while open_ and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            try:
                data = key.fileobj.recv(65536)
            except (ConnectionResetError, BlockingIOError):
                data = b""
            if not data:  # (a CONNECT's "200 Connection established" comes first; keep reading)
                selector.unregister(key.fileobj)
                open_.discard(key.fileobj)
    selector.close()
    return list(open_)


def test_a_thousand_half_sent_requests_are_closed_while_a_call_succeeds(fresh_gateway, idle_mock):
    gw = fresh_gateway({"limits": {"client_idle_timeout_s": IDLE_S}}, mock=idle_mock)
    idlers = []
    for i in range(1000):
        port = gw.gateway_port if i % 2 else gw.proxy_port
        s = socket.create_connection(("127.0.0.1", port))
        if i % 10 == 0:
            s.sendall(b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n")  # then nothing
        elif i % 10 == 1:
            pass  # nothing at all
        else:
            s.sendall(b"POST /v1/chat/compl")  # half a request line
        idlers.append(s)
    try:
        # Its connection is closed by the gateway with the answer (Connection: close), so it is never a 1,001st idle
        # one: closing the client after the call raced the idle clock while the loop was busy closing the thousand.
        with openai.OpenAI(base_url=gw.base_url, api_key="sk-x", max_retries=0, timeout=10,
                           default_headers={"Connection": "close"}) as client:
            answer = client.chat.completions.create(model="gpt-4o-mini",
                                                    messages=[{"role": "user", "content": "during the flood"}])
        assert answer.choices[0].message.content == "Mock reply to: during the flood"
        still_open = wait_closed(idlers, timeout_s=IDLE_S + 14)
        assert not still_open, f"{len(still_open)} of 1000 idle connections still open"
    finally:
        for s in idlers:
            s.close()
    assert gw.stop() == 0
    # Each closed connection logged the same line; the log holds a few of them and the count of the rest.
    closed_lines = [line for line in gw.output().splitlines() if "sent no request in 1 s" in line]
    assert len(closed_lines) <= 12, "\n".join(closed_lines)
    shown = sum(1 for line in closed_lines if "[repeated" not in line)
    held_back = sum(int(line.split("[repeated ")[1].split()[0]) for line in closed_lines if "[repeated" in line)
    assert shown + held_back == 1000
    assert len([line for line in gw.output().splitlines() if "client connect" in line]) <= 12


def test_a_call_slower_than_the_idle_timeout_is_not_cut(idle_gateway, idle_mock):
    gw = idle_gateway
    idle_mock.script({"delay_ms": 2500, "model": "gpt-4o"})
    client = openai.OpenAI(base_url=gw.base_url, api_key="sk-x", max_retries=0, timeout=20)
    started = time.monotonic()
    answer = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "take your time"}])
    assert time.monotonic() - started >= 2.5
    assert answer.choices[0].message.content == "Mock reply to: take your time"
    assert gw.rows("model_requested = 'gpt-4o'")[0]["status"] == 200


def test_a_keep_alive_connection_waiting_for_its_next_request_is_closed(idle_gateway, idle_mock):
    gw = idle_gateway
    conn = http.client.HTTPConnection("127.0.0.1", gw.gateway_port, timeout=10)
    body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "keep alive"}]})
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("connection", "").lower() != "close"
    response.read()
    assert not wait_closed([conn.sock], timeout_s=IDLE_S + 4)
    conn.close()


def test_a_tunnel_to_another_host_is_left_alone_however_quiet(idle_gateway, idle_mock):
    """Traffic to hosts that are not providers passes through untouched, long silences included."""
    gw = idle_gateway
    echo = socket.create_server(("127.0.0.1", 0))

    def serve_one() -> None:
        conn, _ = echo.accept()
        with conn:
            while data := conn.recv(100):
                conn.sendall(data)

    threading.Thread(target=serve_one, daemon=True).start()
    port = echo.getsockname()[1]
    with socket.create_connection(("127.0.0.1", gw.proxy_port), timeout=5) as tunnel:
        tunnel.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        assert tunnel.recv(100).startswith(b"HTTP/1.1 200")
        tunnel.sendall(b"first")
        assert tunnel.recv(100) == b"first"
        time.sleep(IDLE_S + 1.5)
        tunnel.sendall(b"after a silence")
        assert tunnel.recv(100) == b"after a silence"
    echo.close()
