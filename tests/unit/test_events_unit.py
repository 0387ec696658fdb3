"""`call_finished` reaches every subscriber once per call, after the row is written, even when one of them fails."""

from __future__ import annotations

from llmtap.record import CallRecord
from llmtap.webview import WebView


class Failing:
    def call_finished(self, flow, record: CallRecord) -> None:
        raise RuntimeError("a subscriber with a bug")


class Listening:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def call_finished(self, flow, record: CallRecord) -> None:
        self.records.append(record)


def test_every_subscriber_gets_each_finished_call_once_even_after_another_fails(llmtap):
    pipeline = llmtap()
    listening = Listening()
    pipeline.context.master.addons.add(Failing(), listening)

    first = pipeline.call()
    refused = pipeline.call(path="/v1/unknown")

    assert [r.request_id for r in listening.records] == [first.response.headers["helicone-id"],
                                                        refused.response.headers["helicone-id"]]
    assert [r.status for r in listening.records] == [200, 404] and listening.records[0].cost_usd is not None
    assert first.comment  # WebView, also a subscriber, still wrote the flow's comment
    assert len(pipeline.rows()) == 2


def test_headless_no_comment_is_written_that_no_one_would_read(llmtap):
    pipeline = llmtap()
    webview = next(a for a in pipeline.addons if isinstance(a, WebView))
    webview.running()  # nothing here shows or saves flows: mitmdump without -w
    flow = pipeline.call()
    assert not flow.comment and flow.metadata["llmtap_summary"]["request_id"] == flow.response.headers["helicone-id"]
    assert pipeline.rows()[0]["cost_usd"] is not None  # the row is whole all the same
