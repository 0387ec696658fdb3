"""The unit tier: llmtap's real addons driven in-process with mitmproxy's `taddons` and `tflow`, as mitmproxy tests its
own addons. No process, no socket, no sleep: the provider's answer is set on the flow by the test, and windows and
expiries run on a `FakeClock` the test moves by hand.

`llmtap` (fixture) is a `Pipeline`: llmtap's addons in pipeline order, configured from a YAML file written to a tmp
directory, so each test reads like a user's call: `pipeline.call(...)` returns the finished flow, whose response
(status, headers, JSON error) is what the client would get; `pipeline.rows()` reads the calls' rows back from the
real DuckDB file the Recorder wrote.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from llmtap.addon_group import AddonGroup
from llmtap.drain import Drain
from llmtap.idle import ClientIdleTimeout
from llmtap.loglimit import LogRateLimit
from llmtap.pipeline import make_addons
from llmtap.recorder import Recorder
from llmtap.settings import Settings
from llmtap.store import connect
from llmtap.upstream_failure import CLIENT_WAITS_KEY
from mitmproxy import hooks, http
from mitmproxy.flow import Error
from mitmproxy.proxy import mode_specs
from mitmproxy.proxy.layers.http import (
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from mitmproxy.proxy.mode_specs import ProxyMode
from mitmproxy.test import taddons, tflow, tutils

UPSTREAM = "http://127.0.0.1:9"  # never dialled: the test answers in the provider's place
OPENAI_ENV_KEY = "sk-llmtap-unit-openai-key"
CONNECTION_LEVEL = (LogRateLimit, ClientIdleTimeout, Drain)
GATEWAY_MODE = ProxyMode.parse("reverse:http://llmtap.gateway@8787")
assert isinstance(GATEWAY_MODE, mode_specs.ReverseMode)


class FakeClock:
    """A clock a test moves by hand: `clock.advance(61)` is a minute passing, with no sleep."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def chat_body(content: str = "hello", model: str = "gpt-4o-mini", **params: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **params}


def completion(content: str, model: str = "gpt-4o-mini-2024-07-18", prompt_tokens: int = 10,
               completion_tokens: int = 5) -> dict[str, Any]:
    """An OpenAI chat completion as the provider would answer it."""
    return {
        "id": "chatcmpl-unit", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class Pipeline:
    """llmtap's addons, in the order `pipeline.make_addons` composes them, in one mitmproxy test context.

    Built by `pipeline.make_addons`, so the order is the gateway's own. Left out: what works on connections and
    processes rather than calls (`CONNECTION_LEVEL`; idle time-outs have test_idle_unit). RefusalSink and
    AttemptRunner do not run their loopback servers here: a refusal is answered at once (as mitmproxy would after the
    body), and retries and fallbacks, which relay through AttemptRunner's server, are tested end to end.
    """

    def __init__(self, config_path: Path, wall_clock: FakeClock, monotonic_clock: FakeClock) -> None:
        self.addons = [a for a in make_addons(monotonic_clock, wall_clock) if type(a) not in CONNECTION_LEVEL]
        self.wall_clock = wall_clock
        self.settings = next(a for a in self.addons if isinstance(a, Settings))
        self.recorder = next(a for a in self.addons if isinstance(a, Recorder))
        self.context = taddons.context(AddonGroup(self.addons))  # as `pipeline.install` adds them
        self.context.options.update(llmtap_config=str(config_path))
        self.loop = self.context.master.event_loop
        self.provider_requests: list[http.Request] = []  # what reached the provider, oldest first
        self._closed = False

    def call(self, body: Any = None, headers: dict[str, str] | None = None, path: str = "/v1/chat/completions",
             answer: Callable[[http.Request], http.Response] | dict[str, Any] | None = None,
             raw_body: bytes | None = None, upstream_error: str | None = None) -> http.HTTPFlow:
        """One call on the gateway way in, through every hook mitmproxy would run, in its order; the provider's
        `answer` (default: a completion echoing the prompt) is used only if llmtap lets the call leave. With
        `upstream_error`, the provider cannot be reached instead: mitmproxy's `error` hook runs with that error, the
        client still waiting (as upstream_failure.py's HTTP stream marks it)."""
        content = raw_body if raw_body is not None else json.dumps(chat_body() if body is None else body).encode()
        request = tutils.treq(
            method=b"POST", scheme=b"http", host="127.0.0.1", port=8787, path=path.encode(),
            headers=http.Headers([(b"content-type", b"application/json"), (b"content-length", b"%d" % len(content)),
                                  *((k.encode(), v.encode()) for k, v in (headers or {}).items())]),
            # Arrived on the test's wall clock, as the limits and windows count: a row's time agrees with theirs.
            content=content, timestamp_start=self.wall_clock(), timestamp_end=self.wall_clock(),
        )
        flow = tflow.tflow(req=request)
        flow.client_conn.proxy_mode = GATEWAY_MODE
        self._run(HttpRequestHeadersHook(flow))
        self._run(HttpRequestHook(flow))
        if flow.response is None and flow.error is None:
            self.provider_requests.append(flow.request.copy())
            if upstream_error is not None:
                flow.metadata[CLIENT_WAITS_KEY] = True
                flow.error = Error(upstream_error)
                self._run(HttpErrorHook(flow))
                return flow
            flow.response = self._provider_answer(flow.request, answer)
        self._run(HttpResponseHeadersHook(flow))
        self._run(HttpResponseHook(flow))
        return flow

    def rows(self) -> list[dict[str, Any]]:
        """Every row the Recorder wrote, oldest first (the store is flushed and reopened to read them)."""
        store = self.recorder.store
        assert store is not None
        store.close()
        assert store.batches.line_batches_refused == 0, "DuckDB could not read a spooled row the Recorder built"
        with connect(store.path, timeout_s=10, read_only=True) as db:
            cursor = db.execute("SELECT * FROM requests ORDER BY created_at, rowid")  # calls at one fake time: in order
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        self.recorder.store = None
        self.recorder.configure(set())
        return rows

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.loop.run_until_complete(self.context.master.addons.trigger_event(hooks.DoneHook()))
            self.context.__exit__(None, None, None)

    def _run(self, hook: hooks.Hook) -> None:
        self.loop.run_until_complete(self.context.master.addons.handle_lifecycle(hook))

    @staticmethod
    def _provider_answer(request: http.Request, answer) -> http.Response:
        if callable(answer):
            return answer(request)
        if answer is None:
            body = json.loads(request.content or b"{}")
            answer = completion(f"Mock reply to: {body['messages'][-1]['content']}")
        return http.Response.make(200, json.dumps(answer).encode(), {"content-type": "application/json"})


def write_config(workdir: Path, extra_config: dict[str, Any] | None = None) -> Path:
    """An llmtap.yaml in `workdir` with every file under it, `extra_config` merged in as `fresh_gateway` does."""
    workdir.mkdir()
    config: dict[str, Any] = {
        "listen": {"proxy": "127.0.0.1:8080", "gateway": "127.0.0.1:8787"},  # never opened here
        "certs": str(workdir / "certs"),
        "storage": {"path": str(workdir / "llmtap.duckdb")},
        "cache": {"path": str(workdir / "cache")},
        "providers": {"openai": {"upstream": UPSTREAM}, "anthropic": {"upstream": UPSTREAM}},
    }
    for key, value in (extra_config or {}).items():
        config[key] = {**config[key], **value} if isinstance(value, dict) and key in config else value
    config_path = workdir / "llmtap.yaml"
    config_path.write_text(yaml.safe_dump(config))
    return config_path


@pytest.fixture
def wall_clock() -> FakeClock:
    """Wall-clock seconds (cache expiry), starting now so entries stored under it look fresh to diskcache too."""
    return FakeClock(time.time())


@pytest.fixture
def monotonic_clock() -> FakeClock:
    """Monotonic seconds (rate-limit windows)."""
    return FakeClock(1000.0)


@pytest.fixture
def llmtap(tmp_path, wall_clock, monotonic_clock, monkeypatch) -> Iterator[Callable[..., Pipeline]]:
    """Make a `Pipeline` from extra config (merged into a default config, as the `fresh_gateway` fixture does)."""
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_ENV_KEY)
    made: list[Pipeline] = []

    def make(extra_config: dict[str, Any] | None = None) -> Pipeline:
        config_path = write_config(tmp_path / f"llmtap{len(made)}", extra_config)
        pipeline = Pipeline(config_path, wall_clock, monotonic_clock)
        made.append(pipeline)
        return pipeline

    yield make
    for pipeline in made:
        pipeline.close()
