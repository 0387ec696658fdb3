"""What a person sees of an LLM call in mitmweb: a one-line comment on the flow, and a chat view of its bodies.

The `WebView` addon runs last. It masks the keys in the request once it has been sent (the provider key the gateway
injected among them) before mitmweb shows the answer, writes the comment from the call's row (`$0.00041 · 1,234→56
tok · gpt-4o-mini · 812 ms`, money as `money.format_usd` shows it everywhere) when something shows or saves flows
(mitmweb, `-w`, a HAR dump; headless, no one would read it), and leaves a plain summary in
`flow.metadata["llmtap_summary"]` in place of the live `CallState`, so the flow can be saved, copied and replayed
like any other. `LlmCallView` renders chat requests and responses (streamed ones assembled) as turns by role instead
of raw JSON.
"""

from __future__ import annotations

import json

from mitmproxy import contentviews, ctx, http

from .callstate import METADATA_KEY, get_state
from .credentials import redact_secrets
from .money import format_usd
from .record import CallRecord
from .wire import format_for_path, format_named
from .wire.sse import SseParser

SUMMARY_KEY = "llmtap_summary"


class WebView:
    def __init__(self) -> None:
        self.comments_kept = True  # until `running` knows: something shows or saves flows (mitmweb, `-w`, a HAR)

    def running(self) -> None:
        # Headless (mitmdump saving nothing) no one reads a comment: writing it would be per-call work for no one.
        options = ctx.options
        saved = any(getattr(options, name, None) for name in ("save_stream_file", "hardump"))
        self.comments_kept = ctx.master.addons.get("view") is not None or saved

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # The request has been sent: mask its keys before mitmweb's own response hook shows the flow.
        if get_state(flow) is not None:
            redact_secrets(flow.request)

    def call_finished(self, flow: http.HTTPFlow, record: CallRecord) -> None:
        state = get_state(flow)
        if state is None:
            return
        redact_secrets(flow.request)
        if self.comments_kept:
            flow.comment = describe(record)
        flow.metadata[SUMMARY_KEY] = {
            "request_id": state.request_id,
            "wire": state.route.wire.name if state.route.wire else None,
            "comment": flow.comment,
        }
        del flow.metadata[METADATA_KEY]


def describe(record: CallRecord) -> str:
    """One line that says what a call was: cost, tokens, model, latency, and its error if it failed. The numbers come
    first: mitmweb's comment column is narrow, and the model is also in the request a person opens."""
    parts = [format_usd(record.cost_usd)]
    if record.input_tokens is not None or record.output_tokens is not None:
        parts.append(f"{record.input_tokens or 0:,}→{record.output_tokens or 0:,} tok")
    parts.append(record.model or record.model_requested or record.path or "?")
    parts.append(f"{record.latency_ms or 0:,.0f} ms")
    if record.cache_status == "HIT":
        saved = record.cost_saved_usd
        parts.append("cache HIT" + (f" (saved {format_usd(saved)})" if saved is not None else ""))
    if record.error:
        parts.append(f"{record.status or 'failed'} {record.error[:80]}")
    return " · ".join(parts)


class LlmCallView(contentviews.Contentview):
    """Chat turns by role for the bodies of LLM calls llmtap understands."""

    name = "LLM call"

    def prettify(self, data: bytes, metadata: contentviews.Metadata) -> str:
        wire = _wire_of(metadata)
        if wire is None:
            raise ValueError("not an LLM call llmtap reads")
        message = metadata.http_message
        if isinstance(message, http.Request):
            turns = wire.transcript(json.loads(data), None)
        elif (metadata.content_type or "").startswith("text/event-stream"):
            assembler = wire.new_assembler()
            parser = SseParser()
            for event in parser.feed(data + b"\n\n"):
                assembler.add(event)
            turns = wire.transcript(None, assembler.result())
        else:
            turns = wire.transcript(None, json.loads(data))
        lines = []
        summary = metadata.flow.metadata.get(SUMMARY_KEY) if metadata.flow else None
        if summary and not isinstance(message, http.Request):
            lines += [summary["comment"], ""]
        for role, text in turns:
            lines.append(f"[{role}]")
            lines += [f"  {line}" for line in text.splitlines() or [""]]
        return "\n".join(lines)

    def render_priority(self, data: bytes, metadata: contentviews.Metadata) -> float:
        return 2 if data and _wire_of(metadata) is not None else -1


def _wire_of(metadata: contentviews.Metadata):
    flow = metadata.flow
    if not isinstance(flow, http.HTTPFlow):
        return None
    summary = flow.metadata.get(SUMMARY_KEY)
    if summary:
        return format_named(summary["wire"]) if summary.get("wire") else None
    return format_for_path(flow.request.path) if METADATA_KEY in flow.metadata else None
