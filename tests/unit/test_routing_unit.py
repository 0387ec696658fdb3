"""What the gateway sends a provider: the model the provider knows, and, for a stream, a request for usage, written
into the body together, while the row keeps what the client sent."""

from __future__ import annotations

import json

import pytest
from llmtap.config import fill_model, with_client_query

from .conftest import chat_body, completion


def sse_answer(request):
    from mitmproxy import http

    chunk = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini-2024-07-18",
             "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": None}]}
    usage = {**chunk, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11}}
    body = b"".join(f"data: {json.dumps(event)}\n\n".encode() for event in (chunk, usage)) + b"data: [DONE]\n\n"
    return http.Response.make(200, body, {"content-type": "text/event-stream"})


def test_an_explicit_provider_model_reaches_the_provider_under_its_own_name(llmtap):
    pipeline = llmtap()
    flow = pipeline.call(chat_body(model="openai/gpt-4o-mini"), answer=completion("ok"))

    (sent,) = pipeline.provider_requests
    assert json.loads(sent.content or b"")["model"] == "gpt-4o-mini"
    assert flow.response is not None and flow.response.status_code == 200
    (row,) = pipeline.rows()
    assert row["model_requested"] == "openai/gpt-4o-mini"
    assert json.loads(row["request_body"])["model"] == "openai/gpt-4o-mini"  # the row keeps what the client sent


def test_a_stream_gets_both_changes_in_the_one_body_it_is_sent_with(llmtap):
    pipeline = llmtap()
    pipeline.call(chat_body(model="openai/gpt-4o-mini", stream=True), answer=sse_answer)

    (sent,) = pipeline.provider_requests
    body = json.loads(sent.content or b"")
    assert body["model"] == "gpt-4o-mini" and body["stream_options"] == {"include_usage": True}
    (row,) = pipeline.rows()
    assert "stream_options" not in json.loads(row["request_body"])  # the client did not ask for usage


AZURE_CHAT = "/openai/deployments/{model}/chat/completions?api-version=2024-10-21"


@pytest.mark.parametrize("model", ["..", ".", ""])
def test_a_model_cannot_make_a_dot_or_empty_segment_of_a_providers_endpoint(model):
    # A server resolves `/deployments/../chat/completions` to another endpoint, which would get llmtap's key.
    with pytest.raises(ValueError, match="segment"):
        fill_model(AZURE_CHAT, model)


def test_dots_inside_a_model_name_fill_its_segment_as_they_are():
    assert fill_model(AZURE_CHAT, "prod..v2") == "/openai/deployments/prod..v2/chat/completions?api-version=2024-10-21"
    # Gemini's model shares its segment with the method: `..:generateContent` is no `..` segment.
    assert fill_model("/v1beta/models/{model}:generateContent", "..") == "/v1beta/models/..:generateContent"


def test_a_clients_api_version_reaches_only_an_endpoint_that_names_a_deployment():
    client = "/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01&trace=on"
    assert with_client_query("/v1/chat/completions", client) == "/v1/chat/completions?trace=on"
    assert with_client_query("/openai/deployments/gpt-4o/chat/completions", client) == (
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-06-01&trace=on")
    assert with_client_query(fill_model(AZURE_CHAT, "gpt-4o"), client) == (  # config's api-version wins
        "/openai/deployments/gpt-4o/chat/completions?api-version=2024-10-21&trace=on")


def test_config_api_version_wins_however_the_client_spells_the_name():
    client = "/openai/deployments/prod/chat/completions?API-Version=2099-01-01&api%2Dversion=2099-02-02&trace=on"
    assert with_client_query(fill_model(AZURE_CHAT, "prod"), client) == (
        "/openai/deployments/prod/chat/completions?api-version=2024-10-21&trace=on")
    assert with_client_query("/v1/chat/completions", client) == "/v1/chat/completions?trace=on"
