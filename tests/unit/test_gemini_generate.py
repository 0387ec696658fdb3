"""Gemini's native wire format without a proxy: the model and method in the path, streams assembled into the answer
they stand for, and a cached answer replayed as the stream Google would send."""

from __future__ import annotations

import json

from llmtap.config import fill_model
from llmtap.wire import format_for_gateway_path, format_for_path
from llmtap.wire.gemini_generate import GeminiGenerate
from llmtap.wire.sse import SseParser

WIRE = GeminiGenerate()

ANSWER = {
    "candidates": [{
        "content": {"role": "model", "parts": [
            {"text": "Let me think about the weather.", "thought": True},
            {"text": "I will look it up.", "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "weather", "args": {"city": "Paris"}}},
        ]},
        "finishReason": "STOP", "index": 0,
    }],
    "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 9, "thoughtsTokenCount": 5,
                      "totalTokenCount": 26},
    "modelVersion": "gemini-2.5-flash", "responseId": "resp-1",
}


def assemble(stream: bytes, chunk_size: int = 7):
    parser, assembler = SseParser(), WIRE.new_assembler()
    for start in range(0, len(stream), chunk_size):
        for event in parser.feed(stream[start:start + chunk_size]):
            assembler.add(event)
    return assembler


def test_the_model_and_the_method_come_from_the_path():
    path = "/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    assert format_for_path(path + "?alt=sse&key=k").name == WIRE.name
    assert (WIRE.model(path, {}), WIRE.is_stream(path, {})) == ("gemini-2.0-flash", True)
    assert WIRE.model("/v1/models/google%2Fgemini-2.0-flash:generateContent", None) == "google/gemini-2.0-flash"
    assert WIRE.model("/v1beta/models/google/gemini-2.0-flash:generateContent", None) == "google/gemini-2.0-flash"
    assert WIRE.is_stream("/v1beta/models/gemini-2.0-flash:generateContent", {"stream": True}) is False
    assert format_for_gateway_path("/v1/models/gemini-2.0-flash:generateContent").name == WIRE.name
    assert format_for_path("/v1beta/models/gemini-2.0-flash:countTokens") is None


def test_a_provider_path_gets_the_model_and_the_clients_method():
    provider_path = fill_model("/v1beta/models/{model}:generateContent", "google/x y")
    assert provider_path == "/v1beta/models/google%2Fx%20y:generateContent"
    assert WIRE.upstream_path(provider_path, "/v1/models/google/x y:streamGenerateContent") == (
        "/v1beta/models/google%2Fx%20y:streamGenerateContent")
    assert WIRE.with_model("/v1beta/models/gemini-2.0-flash:generateContent", {"contents": []}, "gemini-2.5-pro") == (
        "/v1beta/models/gemini-2.5-pro:generateContent", {"contents": []})
    assert fill_model("/v1/chat/completions", "gpt-4o") == "/v1/chat/completions"


def test_a_stream_and_a_whole_answer_share_a_cache_path():
    assert WIRE.cache_path("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=k") == (
        "/v1beta/models/gemini-2.0-flash:generateContent?key=k")
    assert WIRE.cache_path("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse") == (
        WIRE.cache_path("/v1beta/models/gemini-2.0-flash:generateContent"))
    assert WIRE.cache_path("/v1beta/models/a:generateContent") != WIRE.cache_path("/v1beta/models/b:generateContent")


def test_a_replayed_answer_assembles_back_into_the_same_answer():
    replay = WIRE.replay_stream(ANSWER, {})

    assert len(replay.split(b"\n\n")) - 1 == 3  # one chunk a part
    assembler = assemble(replay)
    assert assembler.complete and assembler.first_token_seen
    assert assembler.result() == ANSWER
    assert WIRE.extract_usage(assembler.result()).output_tokens == 14  # thinking billed as output


def test_text_pieces_join_thoughts_apart_and_the_last_usage_counts():
    def chunk(parts, usage, finish=None):
        candidate = {"content": {"role": "model", "parts": parts}, "index": 0}
        return {"candidates": [{**candidate, **({"finishReason": finish} if finish else {})}],
                "usageMetadata": usage, "modelVersion": "gemini-2.5-flash"}

    chunks = [chunk([{"text": "Hmm, ", "thought": True}], {"promptTokenCount": 3, "totalTokenCount": 3}),
              chunk([{"text": "rain.", "thought": True}], {"promptTokenCount": 3, "totalTokenCount": 3}),
              chunk([{"text": "Take "}], {"promptTokenCount": 3, "candidatesTokenCount": 1}),
              chunk([{"text": "an umbrella."}], {"promptTokenCount": 3, "candidatesTokenCount": 3,
                                                  "thoughtsTokenCount": 2, "totalTokenCount": 8}, "STOP")]
    stream = b"".join(f"data: {json.dumps(c)}\r\n\r\n".encode() for c in chunks)

    streamed = assemble(stream).result()
    assert streamed["candidates"][0]["content"]["parts"] == [
        {"text": "Hmm, rain.", "thought": True}, {"text": "Take an umbrella."}]
    assert streamed["usageMetadata"]["totalTokenCount"] == 8
    # The same chunks as one JSON array (a stream asked for without alt=sse) read the same.
    assert WIRE.extract_usage(chunks) == WIRE.extract_usage(streamed)
    assert WIRE.answer_model(chunks) == "gemini-2.5-flash"


def test_a_stream_that_breaks_off_or_reports_an_error_is_not_complete():
    cut = WIRE.replay_stream(ANSWER, {}).split(b"\n\n")
    assert not assemble(b"\n\n".join(cut[:2]) + b"\n\n").complete
    error = b'data: {"error": {"code": 500, "message": "Internal error", "status": "INTERNAL"}}\n\n'
    broken = assemble(b"\n\n".join(cut[:2]) + b"\n\n" + error)
    assert not broken.complete and broken.result()["error"]["status"] == "INTERNAL"


def test_llmtaps_own_answers_take_googles_error_shape():
    assert WIRE.error_body(429, "llmtap_rate_limited", "slow down") == {"error": {
        "code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED", "llmtap_type": "llmtap_rate_limited"}}
    assert WIRE.error_body(502, "llmtap_upstream_unreachable", "x")["error"]["status"] == "UNAVAILABLE"
    assert WIRE.auth_headers("k") == {"x-goog-api-key": "k"}


def test_a_call_reads_as_its_turns():
    request = {"systemInstruction": {"parts": [{"text": "Be brief."}]},
               "contents": [{"role": "user", "parts": [{"text": "Weather in Paris?"}]}]}
    assert WIRE.transcript(request, None) == [("system", "Be brief."), ("user", "Weather in Paris?")]
    assert WIRE.transcript(None, ANSWER) == [("model", "(thinking) Let me think about the weather.\n"
                                                      "I will look it up.\n→ weather({\"city\": \"Paris\"})")]


ODD_VALUES = [5, "text", None, True, [1, "x", None], {"parts": 7}, [{"parts": "x"}]]


def test_odd_shapes_from_a_provider_are_skipped_and_the_rest_of_the_answer_is_kept():
    """Whatever type a provider puts where Gemini's format has a list or an object, the answer keeps its model, usage
    and readable text; only the odd field is left out."""
    usage = {"promptTokenCount": 3, "candidatesTokenCount": 2}
    for odd in ODD_VALUES:
        for answer in ({"candidates": odd}, {"candidates": [odd]}, {"candidates": [{"content": odd}]},
                       {"candidates": [{"content": {"parts": odd}, "finishReason": "STOP"}]},
                       {"candidates": [{"content": {"parts": [odd, {"text": "kept"}]}}]}):
            answer = {**answer, "usageMetadata": usage, "modelVersion": "gemini-2.0-flash"}
            for response in (answer, [answer], [odd, answer]):
                assert WIRE.answer_model(response) == "gemini-2.0-flash", response
                tokens = WIRE.extract_usage(response)
                assert (tokens.input_tokens, tokens.output_tokens) == (3, 2), response
                WIRE.transcript({"contents": odd, "systemInstruction": {"parts": odd}}, response)
            replayed = assemble(WIRE.replay_stream(answer, {})).result()
            assert replayed["usageMetadata"] == usage and replayed["modelVersion"] == "gemini-2.0-flash", answer
            assert "kept" in json.dumps(WIRE.transcript(None, answer)) or "kept" not in json.dumps(answer)


def test_only_a_whole_json_array_stream_is_kept_for_the_cache():
    chunks = json.loads(WIRE.replay(ANSWER, {}, "/v1beta/models/gemini-2.5-flash:streamGenerateContent")[0])
    assert WIRE.cacheable_answer(chunks) == assemble(WIRE.replay_stream(ANSWER, {})).result()
    assert WIRE.cacheable_answer(chunks[:-1]) is None  # no finish reason yet: cut short
    assert WIRE.cacheable_answer([*chunks, {"error": {"code": 500, "message": "broke"}}]) is None
    assert WIRE.replay(ANSWER, {}, "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse") == (
        WIRE.replay_stream(ANSWER, {}), "text/event-stream; charset=utf-8")
