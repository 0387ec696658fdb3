"""Repeated log lines are rate-limited: a flood of one error gives a handful of lines and a count, not a full disk."""

from __future__ import annotations

import asyncio
import logging

from llmtap.loglimit import RepeatedLineFilter


class Clock:
    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def record(message: str, *args: object, level: int = logging.ERROR, name: str = "mitmproxy.proxy.server",
           client: tuple | None = None) -> logging.LogRecord:
    rec = logging.LogRecord(name, level, __file__, 1, message, args, None)
    if client:
        rec.client = client
    return rec


def test_the_same_line_passes_burst_times_per_window_then_is_counted():
    clock = Clock()
    limit = RepeatedLineFilter(window_s=10, burst=3, clock=clock)
    passed = [limit.filter(record("accept failed: %s", "Too many open files", client=("127.0.0.1", 40000 + i)))
              for i in range(1000)]
    assert passed == [True] * 3 + [False] * 997  # the client a line is about does not make it a different line
    assert limit.report() == []  # the window has not ended yet
    clock.now_s += 10
    [held] = limit.report()
    assert (held.message, held.count, held.level) == ("accept failed: Too many open files", 997, logging.ERROR)
    assert limit.report() == []  # reported once


def test_the_line_that_opens_a_new_window_carries_the_count_of_the_last():
    clock = Clock()
    limit = RepeatedLineFilter(window_s=10, burst=1, clock=clock)
    for _ in range(5):
        limit.filter(record("upstream refused"))
    clock.now_s += 10.5
    line = record("upstream refused")
    assert limit.filter(line)
    assert line.getMessage() == "upstream refused [repeated 4 more times within 10 s, not shown]"
    assert not limit.filter(record("upstream refused"))  # the new window's burst is used up


def test_different_lines_levels_and_loggers_are_limited_apart():
    limit = RepeatedLineFilter(window_s=10, burst=1, clock=Clock())
    assert limit.filter(record("a"))
    assert limit.filter(record("b"))
    assert limit.filter(record("a", level=logging.INFO))
    assert limit.filter(record("a", name="llmtap.recorder"))
    assert not limit.filter(record("a"))


def test_one_record_seen_by_several_handlers_counts_once():
    limit = RepeatedLineFilter(window_s=10, burst=1, clock=Clock())
    line = record("x")
    assert limit.filter(line) and limit.filter(line) and limit.filter(line)
    assert not limit.filter(record("x"))


def test_tracked_lines_are_bounded_and_quiet_ones_are_forgotten():
    clock = Clock()
    limit = RepeatedLineFilter(window_s=10, burst=1, clock=clock, max_tracked_lines=100)
    assert all(limit.filter(record(f"unique {i}")) for i in range(500))  # untracked past the bound: still shown
    assert len(limit._windows) == 100
    clock.now_s += 10
    assert limit.filter(record("new after the quiet ones ended"))
    assert len(limit._windows) == 1


def test_a_client_address_in_the_text_does_not_make_a_line_different():
    limit = RepeatedLineFilter(window_s=10, burst=1, clock=Clock())
    assert limit.filter(record("127.0.0.1:40001: Bad HTTP request line: b'X'", client=("127.0.0.1", 40001)))
    assert not limit.filter(record("127.0.0.1:40002: Bad HTTP request line: b'X'", client=("127.0.0.1", 40002)))


def test_a_thousand_identical_errors_give_a_handful_of_lines(fresh_gateway):
    """End to end: 1,000 connections send the same malformed request; mitmproxy answers each with a 400 and logs
    the same error for each. The log shows a few of them and how many more there were."""

    gateway = fresh_gateway()

    async def bad_request() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.gateway_port)
        writer.write(b"NOT-HTTP\r\n\r\n")
        answer = await reader.read()
        writer.close()
        return answer.split(b"\r\n", 1)[0]

    async def flood() -> list[bytes]:
        limiter = asyncio.Semaphore(50)

        async def one() -> bytes:
            async with limiter:
                return await bad_request()

        return await asyncio.gather(*(one() for _ in range(1000)))

    assert asyncio.run(flood()) == [b"HTTP/1.1 400 Bad Request"] * 1000
    assert gateway.stop() == 0  # (held-back counts are reported every few seconds, and all at once when stopping)
    lines = [line for line in gateway.output().splitlines() if "Bad HTTP request line: b'NOT-HTTP'" in line]
    assert 1 <= len(lines) <= 12, "\n".join(lines[:20])
    shown = sum(1 for line in lines if "[repeated" not in line)
    held_back = sum(int(line.split("[repeated ")[1].split()[0]) for line in lines if "[repeated" in line)
    assert shown + held_back == 1000
