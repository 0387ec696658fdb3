"""The first addon of the pipeline: decides which flows are LLM calls and builds their `CallState`.

A flow is an LLM call when it arrives at the gateway listener, or through the proxy listener for a provider host named
in config; anything else is left alone. `Helicone-*` headers are parsed once here, answered with 400 when malformed,
and removed so they never reach a provider. Every answer leaves with `Helicone-Id`, the key of the call's row.
"""

from __future__ import annotations

import time

from mitmproxy import http
from mitmproxy.proxy.mode_specs import ReverseMode

from .callstate import CallState, attach_state, get_state
from .credentials import masked_path
from .headers import PREFIX, HeaderError, parse_helicone_headers, tags_only
from .replies import reply_with_error
from .settings import Settings
from .wire import format_for_path, read_body


class Intake:
    def __init__(self, settings: Settings):
        self.settings = settings

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or get_state(flow):
            return
        config = self.settings.config
        if isinstance(flow.client_conn.proxy_mode, ReverseMode):
            state = CallState(way="gateway")
        elif provider := config.provider_for_host(flow.request.pretty_host):
            state = CallState(way="proxy", provider=provider)
        else:
            return
        attach_state(flow, state)
        state.set_arrival(flow.request.timestamp_start)
        state.client_host, state.client_path = flow.request.pretty_host, masked_path(flow.request.path)
        header_fields = [(k, v) for k, v in flow.request.headers.items(multi=True)]
        for name in {k for k, _ in header_fields if k.lower().startswith(PREFIX)}:
            del flow.request.headers[name]
        state.wire = format_for_path(flow.request.path)
        if state.wire is not None or "json" in flow.request.headers.get("content-type", ""):
            state.request_body = read_body(flow.request)  # (uploads, audio and the like are not logged)
        state.model_requested, state.stream = (
            state.wire.model_and_stream(state.request_body) if state.wire else (None, False)
        )
        try:
            state.options = parse_helicone_headers(header_fields, config.request_defaults)
        except HeaderError as e:
            state.options = tags_only(header_fields)  # the row keeps its tags and honours its omit flags
            reply_with_error(flow, 400, "llmtap_invalid_header", e.message, header=e.header)
            return
        if state.options.request_id:
            state.request_id = state.options.request_id
        # llmtap reads every answer, streamed ones included; a compressed stream could not be read as it passes.
        flow.request.headers["accept-encoding"] = "identity"

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if (state := get_state(flow)) is None or flow.response is None:
            return
        state.first_byte_at = time.monotonic()
        flow.response.headers["helicone-id"] = state.request_id  # the key of the call's row

