"""The `Recorder` addon: one row in DuckDB for every LLM call a client made, answered or not.

It owns the `RecordStore` (opened when mitmproxy starts, flushed when it stops), reads the finished flow and its
`CallState`, prices the usage, queues the row, and then announces the finished call (`call_finished`, events.py) to
the addons that act on it. Keys, cookies and auth headers are never part of a row.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal
from typing import Any

from mitmproxy import exceptions, http

from .bodies import capped_json_text
from .callstate import CallState, get_state
from .events import FlowEnd, announce_call_finished
from .log_file import log_file_problem
from .origin import origin, origin_of_url
from .pricing import Priced, count_tokens, is_billed_endpoint, load_prices, price_call
from .record import CallRecord
from .settings import Settings
from .store import RecordStore
from .streaming import read_answer
from .wire import endpoint_path, is_ratelimit_header
from .wire.base import model_named_in

logger = logging.getLogger(__name__)



class Recorder(FlowEnd):
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store: RecordStore | None = None

    def configure(self, updated: set[str]) -> None:
        path = self.settings.config.storage_path
        if self.store is not None and self.store.path == path:
            return
        if self.store is not None:
            self.store.close()
        if problem := log_file_problem(path):
            raise exceptions.OptionsError(f"storage.path: {problem}")
        options = self.settings.config.storage
        store = RecordStore(path, shutdown_wait_s=options.shutdown_wait_s,
                            fsync_interval_s=options.spool_fsync_interval_s, max_memory_rows=options.max_memory_rows,
                            fallback_spool_dir=options.fallback_spool_dir)
        try:
            store.open()
        except Exception as e:  # a locked, corrupt or unwritable file: say so at start-up, not per request
            raise exceptions.OptionsError(f"storage.path: cannot open {path}: {e}") from None
        self.store = store

    def running(self) -> None:
        load_prices()  # before FreezeStartupHeap: the price data joins start-up's heap, out of garbage collection

    def done(self) -> None:
        if self.store is not None:
            self.store.close()
            logger.info(f"llmtap: {self.store.written} rows written to {self.store.path}"
                        + (f", {self.store.rows_waiting} wait in its spool for the next start"
                           if self.store.rows_waiting else "")
                        + (f", {self.store.rows_lost} LOST" if self.store.rows_lost else ""))

    def flow_ended(self, flow: http.HTTPFlow) -> None:
        state = get_state(flow)
        if state is None or state.outcome.record is not None:
            return
        try:
            record = build_record(flow, state, self.settings)
        except Exception as e:  # a bug or an answer nobody foresaw must not cost the call its row
            logger.exception(f"llmtap: building the row of {state.request_id} failed; writing what is known")
            record = minimal_record(flow, state, f"llmtap could not read this call: {type(e).__name__}: {e}")
        state.outcome.record = record
        if self.store is not None:
            self.store.append(record.as_row())
        announce_call_finished(flow, record)


def build_record(flow: http.HTTPFlow, state: CallState, settings: Settings) -> CallRecord:
    """The `requests` row for a finished (answered, refused or failed) call."""
    response = flow.response
    answer = read_answer(response, state)
    model = state.route.wire.answer_model(answer) if state.route.wire else model_named_in(answer)
    status = client_status(flow)
    priced = _price(flow, state, status, answer, model, settings)
    cost_saved = None
    if state.cache.status == "HIT":  # nothing billed; what the answer cost when it was made is what the hit saved
        cost_saved = priced.cost_usd
        priced = replace(priced, cost_usd=Decimal(0), price_source="cache-hit")
    error = state.outcome.error or (flow.error.msg if flow.error else None) or _provider_error(response, answer)
    options = state.request.options
    cap = settings.config.limits.max_logged_body_bytes
    return CallRecord(
        request_id=state.request_id,
        created_at=state.created_at,
        way=state.way,
        provider=state.route.provider.name if state.route.provider else None,
        method=flow.request.method,
        host=state.request.client_host,
        path=state.request.client_path,
        upstream=upstream_origin(flow, state),
        model=model,
        model_requested=state.request.model,
        status=status,
        error=error,
        stream=state.request.stream or state.outcome.streamed,
        latency_ms=state.elapsed_ms(),
        ttfb_ms=state.elapsed_ms(state.outcome.first_byte_at) if state.outcome.first_byte_at else None,
        ttft_ms=_ttft_ms(state),
        input_tokens=priced.input_tokens,
        output_tokens=priced.output_tokens,
        cached_input_tokens=priced.cached_input_tokens,
        cache_write_input_tokens=priced.cache_write_input_tokens,
        reasoning_tokens=priced.reasoning_tokens,
        total_tokens=priced.total_tokens,
        cost_usd=priced.cost_usd,
        price_source=priced.price_source,
        price_error=priced.price_error,
        cost_saved_usd=cost_saved,
        cache_status=state.cache.status,
        attempts=_attempts(state),
        retries=state.attempts.retries,
        fallback_from=state.attempts.fallback_from,
        attempt_log=state.attempts.log or None,
        user_id=options.user_id,
        session_id=options.session_id,
        session_path=options.session_path,
        session_name=options.session_name,
        prompt_id=options.prompt_id,
        properties=dict(options.properties),
        key_hash=state.request.key_hash,
        key_owner=state.request.key_owner,
        ratelimit_policy=options.ratelimit_policy.text if options.ratelimit_policy else None,
        ratelimit=ratelimit_headers(response),
        # A refused call keeps no body: a caller without a key must not be able to fill the log.
        request_body=None if options.omit_request or state.outcome.refused else (
            state.request.body_logged or capped_json_text(state.request.body, cap)),
        response_body=None if options.omit_response else capped_json_text(answer, cap),
        notes=state.notes or None,
    )


def minimal_record(flow: http.HTTPFlow, state: CallState, error: str) -> CallRecord:
    """The row of a call whose answer could not be read: who, when, where and what went wrong."""
    return CallRecord(
        request_id=state.request_id, created_at=state.created_at, way=state.way,
        provider=state.route.provider.name if state.route.provider else None, method=flow.request.method,
        host=state.request.client_host, path=state.request.client_path, model_requested=state.request.model,
        status=flow.response.status_code if flow.response else None, error=error,
        latency_ms=state.elapsed_ms(), user_id=state.request.options.user_id,
        session_id=state.request.options.session_id,
        properties=dict(state.request.options.properties), key_hash=state.request.key_hash,
    )


def upstream_origin(flow: http.HTTPFlow, state: CallState) -> str | None:
    """`scheme://host[:port]` of the endpoint that answered the call (after routing, retries and fallbacks); None
    when llmtap answered itself (a refusal, a cache hit, or its 502 when no provider answered: the error names the
    upstream it could not reach)."""
    if state.outcome.answered_by_llmtap or state.cache.status == "HIT":
        return None
    if state.attempts.answered_url is not None:
        return origin_of_url(state.attempts.answered_url)
    if state.attempts.log:  # the relay tried and no provider answered: its own 502 is what the client got
        return None
    return origin(flow.request.scheme, flow.request.host, flow.request.port)


def client_status(flow: http.HTTPFlow) -> int | None:
    """The status the client got: mitmproxy answers 502 itself when the upstream cannot be reached."""
    if flow.response is not None:
        return flow.response.status_code
    if flow.error is not None and flow.server_conn.timestamp_tcp_setup is None:
        return 502
    return None


def _price(flow: http.HTTPFlow, state: CallState, status: int | None, answer: Any, model: str | None,
           settings: Settings) -> Priced:
    if state.outcome.answered_by_llmtap:
        return Priced(cost_usd=Decimal(0), price_source="not-billed")  # no provider saw it
    prices_provider = state.route.provider.prices_provider if state.route.provider else None
    usage = state.route.wire.extract_usage(answer, prices_provider) if state.route.wire else None
    if usage is None and status is not None and status >= 400:
        return Priced(cost_usd=Decimal(0), price_source="not-billed")  # providers do not bill refused calls
    if state.route.provider is None:
        return Priced(price_error="no provider")
    if state.route.provider.free:  # a local model server: 0 by design, whatever the endpoint; its tokens counted
        return replace(count_tokens(usage), cost_usd=Decimal(0), price_source="free")
    path = endpoint_path(state.request.client_path or flow.request.path)
    billed = is_billed_endpoint(flow.request.method, path, state.route.wire is not None)
    if billed is False:  # GET /v1/models, a file upload: no LLM call, nothing to price
        return Priced(cost_usd=Decimal(0), price_source="not-billed")
    if billed is None:
        return Priced(price_error=f"llmtap does not read usage from {flow.request.method} {path}")
    if usage is None and _cut(state):
        return Priced(price_error="the answer was too large to read its usage from (limits.max_logged_body_bytes)")
    return price_call(
        usage, model or state.request.model, state.route.provider.prices_provider, settings.config.pricing,
        state.created_at, state.route.provider.name,
    )


def _cut(state: CallState) -> bool:
    """True when llmtap kept only part of the answer (it was larger than limits.max_logged_body_bytes)."""
    body_tap, tap = state.outcome.body_tap, state.outcome.tap
    return (body_tap is not None and body_tap.cut) or (tap is not None and tap.assembler.cut)


def _attempts(state: CallState) -> int:
    if state.attempts.log:
        return sum(1 for attempt in state.attempts.log if not attempt.skipped)
    # llmtap's own answers (and cache hits) reached no provider
    return 0 if state.outcome.answered_by_llmtap or state.cache.status == "HIT" else 1


def _ttft_ms(state: CallState) -> float | None:
    if state.outcome.tap is not None:
        return state.elapsed_ms(state.outcome.tap.first_token_at) if state.outcome.tap.first_token_at else None
    return state.elapsed_ms(state.outcome.first_byte_at) if state.outcome.first_byte_at else None


def _provider_error(response: http.Response | None, answer: Any) -> str | None:
    if response is None or response.status_code < 400:
        return None
    if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
        error = answer["error"]
        return f"{error.get('type') or error.get('code') or response.status_code}: {error.get('message', '')}".strip()
    return f"HTTP {response.status_code}"


def ratelimit_headers(response: http.Response | None) -> dict[str, str]:
    """The provider's rate-limit headers, names lower-cased."""
    if response is None:
        return {}
    names = [name.decode("latin-1") for name, _ in response.headers.fields]  # one pass; items() asks name by name
    return {name.lower(): response.headers[name] for name in names if is_ratelimit_header(name.lower())}
