"""How llmtap's addons learn that a flow, or an LLM call, has ended.

- `FlowEnd`: a base for addons that act once per flow when it ends, whether it was answered (mitmproxy's `response`
  hook) or not (`error`): one method, `flow_ended`, instead of a pair of hooks that do the same.
- `CallFinishedHook`: llmtap's own mitmproxy event. `Recorder` fires it once per LLM call, right after the call's
  row is final; an addon subscribes by defining `call_finished(self, flow, record)`. Subscribers run in pipeline
  order, synchronously (an addon with slow work to do starts a task), and while the call's `CallState` is still on
  the flow: `WebView`, the last of them, replaces it with a plain summary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from mitmproxy import ctx, hooks, http

from .record import CallRecord

logger = logging.getLogger(__name__)


@dataclass
class CallFinishedHook(hooks.Hook):
    """An LLM call has finished (answered, refused or failed) and `record` is its row, as written to the log."""

    flow: http.HTTPFlow
    record: CallRecord


def announce_call_finished(flow: http.HTTPFlow, record: CallRecord) -> None:
    """Fire `call_finished` on the running addons that take it, in chain order, through mitmproxy's own dispatch
    (user scripts may subscribe too): in the gateway, `QuickDispatch` visits only the subscribers. As with
    mitmproxy's own hooks, one subscriber's error is logged ("Addon error") and the others still run."""
    ctx.master.addons.trigger(CallFinishedHook(flow, record))


class FlowEnd:
    """Calls `flow_ended(flow)` once a flow has ended, answered or not."""

    def response(self, flow: http.HTTPFlow) -> None:
        self.flow_ended(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.flow_ended(flow)

    def flow_ended(self, flow: http.HTTPFlow) -> None:
        raise NotImplementedError
