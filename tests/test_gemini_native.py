"""Google Gemini's native API (`models/{model}:generateContent`, `:streamGenerateContent?alt=sse`) through both ways
in, with Google's own SDK (google-genai) and curl: logged, priced, and its key never kept.

Prices are genai-prices' published prices for Google's models, in USD per million tokens:
- gemini-2.0-flash: input 0.10, output 0.40, cached input 0.025
- gemini-2.5-flash: input 0.30, output 2.50, cached input 0.03; thinking (`thoughtsTokenCount`) is billed as output,
  and cached tokens (`cachedContentTokenCount`) are part of `promptTokenCount`, billed at the cached price instead.
The mock counts words: a prompt of N words in one turn is N + 4 tokens; the reply "Mock reply to: <prompt>" is 3 + N.
"""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal

import pytest
from google import genai
from google.genai import errors, types
from mitmproxy import io

from conftest import curl, shared_gateway
from test_proxy import run_client  # a client program run with only the environment `llmtap env` prints

GEMINI_ENV_KEY = "gemini-env-key-0123456789abcdef"  # llmtap's own key for Google, injected on the gateway way in
CLIENT_KEY = "AIzaSy-client-own-key-9876543210zyxw"  # the key a client sends (x-goog-api-key or ?key=)
HOST = "generativelanguage.googleapis.com"
MTOK = Decimal(1_000_000)

gemini_gateway = shared_gateway(lambda mock: {"providers": {"google": {"upstream": mock.url}}},
                                env={"GEMINI_API_KEY": GEMINI_ENV_KEY})


def gateway_client(gateway, **headers: str) -> genai.Client:
    """Google's SDK pointed at the gateway (its root: the SDK adds `/v1beta/models/...`)."""
    return genai.Client(api_key=CLIENT_KEY, http_options=types.HttpOptions(
        base_url=gateway.base_url.removesuffix("/v1"), headers=headers or None))


def helicone_id(response) -> str:
    return response.sdk_http_response.headers["helicone-id"]


def cost_of(input_tokens: int, output_tokens: int, input_price: str, output_price: str, cached_tokens: int = 0,
            cached_price: str = "0") -> Decimal:
    """What a call costs at per-million prices: cached input at its own price, the rest of the input at the input
    price."""
    return ((input_tokens - cached_tokens) * Decimal(input_price) + cached_tokens * Decimal(cached_price)
            + output_tokens * Decimal(output_price)) / MTOK


def test_sdk_call_through_the_gateway_is_logged_and_priced_with_the_gateways_key(gemini_gateway, mock_provider):
    client = gateway_client(gemini_gateway)
    response = client.models.generate_content(model="gemini-2.0-flash", contents="count my tokens please")

    assert response.text == "Mock reply to: count my tokens please"
    assert (response.usage_metadata.prompt_token_count, response.usage_metadata.candidates_token_count) == (8, 7)
    (seen,) = mock_provider.requests()
    assert seen["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    assert seen["headers"]["x-goog-api-key"] == GEMINI_ENV_KEY and CLIENT_KEY not in json.dumps(seen)
    row = gemini_gateway.row(helicone_id(response))
    assert (row["way"], row["provider"], row["model"], row["model_requested"]) == (
        "gateway", "google", "gemini-2.0-flash", "gemini-2.0-flash")
    assert (row["status"], row["stream"], row["input_tokens"], row["output_tokens"]) == (200, False, 8, 7)
    assert row["cost_usd"] == cost_of(8, 7, "0.10", "0.40") and row["price_source"] == "genai-prices"


def test_sdk_stream_through_the_gateway_prices_thinking_as_output_and_cached_tokens_at_the_cached_price(
        gemini_gateway, mock_provider):
    mock_provider.script({"usage": {"thoughtsTokenCount": 7, "cachedContentTokenCount": 4}})
    client = gateway_client(gemini_gateway)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="stream my tokens please"))

    assert len(chunks) > 3, "the answer came in pieces"
    assert "".join(chunk.text or "" for chunk in chunks) == "Mock reply to: stream my tokens please"
    assert mock_provider.requests()[-1]["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    row = gemini_gateway.row(helicone_id(chunks[0]))
    assert (row["provider"], row["model"], row["stream"], row["status"]) == ("google", "gemini-2.5-flash", True, 200)
    # promptTokenCount 8 (4 of them cached), candidatesTokenCount 7 + thoughtsTokenCount 7: the last chunk's counts
    assert (row["input_tokens"], row["cached_input_tokens"]) == (8, 4)
    assert (row["output_tokens"], row["reasoning_tokens"]) == (14, 7)
    assert row["cost_usd"] == cost_of(8, 14, "0.30", "2.50", cached_tokens=4, cached_price="0.03")
    assert json.loads(row["response_body"])["candidates"][0]["content"]["parts"] == [
        {"text": "Mock reply to: stream my tokens please"}]


def test_provider_slash_model_in_the_path_routes_to_google(gemini_gateway, mock_provider):
    result = curl("-X", "POST", f"{gemini_gateway.base_url.removesuffix('/v1')}/v1beta/models/"
                  "google/gemini-2.0-flash:generateContent", "-H", "content-type: application/json",
                  "-d", json.dumps({"contents": [{"role": "user", "parts": [{"text": "explicit provider"}]}]}))

    assert result.status == 200, result.body
    assert mock_provider.requests()[-1]["path"] == "/v1beta/models/gemini-2.0-flash:generateContent"
    row = gemini_gateway.row(result.headers["helicone-id"])
    assert (row["provider"], row["model_requested"], row["model"]) == (
        "google", "google/gemini-2.0-flash", "gemini-2.0-flash")
    assert row["cost_usd"] == cost_of(6, 5, "0.10", "0.40")


def test_a_model_no_provider_serves_is_refused_in_googles_error_shape(gemini_gateway, mock_provider):
    client = gateway_client(gemini_gateway)
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model="nobodys-model-1", contents="hello")

    assert refused.value.code == 400 and refused.value.status == "INVALID_ARGUMENT"
    assert "nobodys-model-1" in refused.value.message
    assert mock_provider.requests() == []


def test_a_providers_error_reaches_the_sdk_and_is_logged_unbilled(gemini_gateway, mock_provider):
    mock_provider.script({"status": 429})
    client = gateway_client(gemini_gateway, **{"Helicone-Property-Case": "429"})
    with pytest.raises(errors.ClientError) as refused:
        client.models.generate_content(model="gemini-2.0-flash", contents="too many")

    assert refused.value.code == 429 and refused.value.status == "RESOURCE_EXHAUSTED"
    (row,) = gemini_gateway.rows("properties['case'] = '429'")
    assert (row["status"], row["cost_usd"], row["price_source"]) == (429, 0, "not-billed")


def test_a_fallback_model_is_named_in_the_path_streamed_or_not(gemini_gateway, mock_provider):
    mock_provider.script({"model": "gemini-2.0-flash", "status": 503}, {"model": "gemini-2.0-flash", "status": 503})
    client = gateway_client(gemini_gateway, **{"Helicone-Fallback-Model": "gemini-2.5-flash"})

    whole = client.models.generate_content(model="gemini-2.0-flash", contents="fall back please")
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="fall back please"))

    assert whole.model_version == chunks[-1].model_version == "gemini-2.5-flash"
    assert "".join(c.text or "" for c in chunks) == whole.text == "Mock reply to: fall back please"
    seen = mock_provider.requests()
    assert [request["path"] for request in seen] == [
        "/v1beta/models/gemini-2.0-flash:generateContent", "/v1beta/models/gemini-2.5-flash:generateContent",
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"]
    assert all("model" not in request["body"] for request in seen)  # Google refuses a field it does not know
    for row in (gemini_gateway.row(helicone_id(whole)), gemini_gateway.row(helicone_id(chunks[0]))):
        assert (row["model"], row["fallback_from"], row["attempts"]) == ("gemini-2.5-flash", "gemini-2.0-flash", 2)
        assert row["cost_usd"] == cost_of(7, 6, "0.30", "2.50")


def test_cache_keeps_each_models_answer_apart_and_serves_streams_and_whole_answers_alike(gemini_gateway, mock_provider):
    client = gateway_client(gemini_gateway, **{"Helicone-Cache-Enabled": "true"})
    ask = {"contents": "the same question for two models"}
    ask_other = {"contents": "first asked as a stream"}

    first = client.models.generate_content(model="gemini-2.0-flash", **ask)
    again = client.models.generate_content(model="gemini-2.0-flash", **ask)
    other_model = client.models.generate_content(model="gemini-2.5-flash", **ask)
    replayed = list(client.models.generate_content_stream(model="gemini-2.0-flash", **ask))
    streamed = list(client.models.generate_content_stream(model="gemini-2.0-flash", **ask_other))
    then_whole = client.models.generate_content(model="gemini-2.0-flash", **ask_other)

    statuses = [r.sdk_http_response.headers["helicone-cache"] for r in (first, again, other_model, replayed[0],
                                                                       streamed[0], then_whole)]
    assert statuses == ["MISS", "HIT", "MISS", "HIT", "MISS", "HIT"]
    assert len(mock_provider.requests()) == 3
    assert other_model.model_version == "gemini-2.5-flash" and again.model_version == "gemini-2.0-flash"
    assert "".join(c.text or "" for c in replayed) == first.text  # the whole answer, replayed as Gemini's events
    assert replayed[-1].usage_metadata.total_token_count == first.usage_metadata.total_token_count == 19
    assert then_whole.text == "".join(c.text or "" for c in streamed) == "Mock reply to: first asked as a stream"
    hit = gemini_gateway.row(helicone_id(replayed[0]))
    assert (hit["cache_status"], hit["cost_usd"], hit["input_tokens"], hit["stream"]) == ("HIT", 0, 10, True)
    assert hit["cost_saved_usd"] == cost_of(10, 9, "0.10", "0.40")


def test_a_stream_without_alt_sse_is_one_json_array_whose_usage_is_read(gemini_gateway, mock_provider):
    result = curl("-X", "POST", f"{gemini_gateway.base_url.removesuffix('/v1')}/v1/models/"
                  "gemini-2.0-flash:streamGenerateContent", "-H", "content-type: application/json",
                  "-d", json.dumps({"contents": [{"parts": [{"text": "an array please"}]}]}))

    assert result.status == 200 and isinstance(result.json(), list) and len(result.json()) == 6
    row = gemini_gateway.row(result.headers["helicone-id"])
    assert (row["stream"], row["model"], row["input_tokens"], row["output_tokens"]) == (
        True, "gemini-2.0-flash", 7, 6)
    assert row["cost_usd"] == cost_of(7, 6, "0.10", "0.40")


def test_a_cached_stream_without_alt_sse_is_replayed_as_a_json_array_as_google_sends_it(gemini_gateway,
                                                                                         mock_provider):
    ask = ("-X", "POST", f"{gemini_gateway.base_url.removesuffix('/v1')}/v1beta/models/"
           "gemini-2.0-flash:streamGenerateContent", "-H", "content-type: application/json",
           "-H", "Helicone-Cache-Enabled: true", "-d", json.dumps({"contents": [{"parts": [{"text": "an array twice"}]}]}))
    first = curl(*ask)
    gemini_gateway.row(first.headers["helicone-id"])  # stored once its row is written
    second = curl(*ask)

    assert [r.headers["helicone-cache"] for r in (first, second)] == ["MISS", "HIT"]
    assert second.headers["content-type"].startswith("application/json")
    chunks = second.json()
    assert isinstance(chunks, list) and isinstance(first.json(), list)
    text = "".join(part["text"] for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"])
    assert text == "Mock reply to: an array twice"
    assert chunks[-1]["usageMetadata"] == first.json()[-1]["usageMetadata"]
    whole = curl(*ask[:2], ask[2].replace(":streamGenerateContent", ":generateContent"), *ask[3:])
    assert whole.headers["helicone-cache"] == "HIT"  # the array was kept as the whole answer it stands for
    assert whole.json()["candidates"][0]["content"]["parts"] == [{"text": "Mock reply to: an array twice"}]


def test_a_stream_cut_short_is_logged_with_its_error_and_the_usage_reported_until_then(gemini_gateway, mock_provider):
    mock_provider.script({"cut_after": 3})
    cut = subprocess.run(["curl", "-s", "-D", "-", "-X", "POST", "-H", "content-type: application/json",
                          "-d", json.dumps({"contents": [{"parts": [{"text": "cut me off please"}]}]}),
                          f"{gemini_gateway.base_url.removesuffix('/v1')}/v1beta/models/"
                          "gemini-2.0-flash:streamGenerateContent?alt=sse"], capture_output=True, text=True, timeout=30)

    assert cut.returncode == 18  # curl: the body ended before it was complete
    request_id = next(line.split(":", 1)[1].strip() for line in cut.stdout.splitlines()
                      if line.lower().startswith("helicone-id:"))
    row = gemini_gateway.row(request_id)
    assert row["stream"] is True and "incomplete" in row["error"]
    # Google counts usage on every chunk: the third says 3 tokens generated so far, of a prompt of 8.
    assert (row["input_tokens"], row["output_tokens"]) == (8, 3)
    assert row["cost_usd"] == cost_of(8, 3, "0.10", "0.40")
    assert json.loads(row["response_body"])["candidates"][0]["content"]["parts"] == [{"text": "Mock reply to: "}]


@pytest.mark.parametrize("alt_sse", [False, True])
def test_an_answer_whose_parts_are_not_a_list_is_still_logged_with_its_tokens_and_cost(gemini_gateway, mock_provider,
                                                                                       alt_sse):
    odd = {"candidates": [{"content": {"parts": 5}, "finishReason": "STOP"}],
           "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 2}, "modelVersion": "gemini-2.0-flash"}
    # As a whole JSON array; or as an event among the mock's own, whose last usage (7 in, 6 out) is the call's.
    mock_provider.script({"insert_raw": f"data: {json.dumps(odd)}\r\n\r\n"} if alt_sse
                         else {"status": 200, "body": [odd]})
    tokens = (7, 6) if alt_sse else (3, 2)
    result = curl("-X", "POST", f"{gemini_gateway.base_url.removesuffix('/v1')}/v1beta/models/gemini-2.0-flash:"
                  f"streamGenerateContent{'?alt=sse' if alt_sse else ''}", "-H", "content-type: application/json",
                  "-d", json.dumps({"contents": [{"parts": [{"text": "odd parts please"}]}]}))

    assert result.status == 200
    row = gemini_gateway.row(result.headers["helicone-id"])
    assert (row["input_tokens"], row["output_tokens"], row["error"]) == (*tokens, None), row["price_error"]
    assert row["cost_usd"] == cost_of(*tokens, "0.10", "0.40")
    assert "modelVersion" in row["response_body"]


@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent"])  # the stream: one JSON array
def test_an_answer_larger_than_the_log_cap_is_still_priced(fresh_gateway, mock_provider, method):
    gateway = fresh_gateway({"providers": {"google": {"upstream": mock_provider.url}},
                             "limits": {"max_logged_body_bytes": 120}}, env={"GEMINI_API_KEY": GEMINI_ENV_KEY})
    result = curl("-X", "POST", f"{gateway.base_url.removesuffix('/v1')}/v1beta/models/gemini-2.0-flash:{method}",
                  "-H", "content-type: application/json",
                  "-d", json.dumps({"contents": [{"parts": [{"text": "a long answer please"}]}]}))

    assert result.status == 200 and len(result.body) > 120
    row = gateway.row(result.headers["helicone-id"])
    assert json.loads(row["response_body"])["llmtap_truncated"] is True  # only its ends were kept
    assert (row["model"], row["input_tokens"], row["output_tokens"]) == ("gemini-2.0-flash", 8, 7), row["price_error"]
    assert row["cost_usd"] == cost_of(8, 7, "0.10", "0.40")


def test_sdk_through_the_proxy_with_no_code_change_is_logged_and_keeps_its_own_key(gemini_gateway, mock_provider):
    out = run_client(gemini_gateway, f"""
        import json
        from google import genai
        client = genai.Client(api_key={CLIENT_KEY!r})  # Google's real base URL, reached through HTTPS_PROXY
        answer = client.models.generate_content(model="gemini-2.0-flash", contents="through the proxy")
        chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash", contents="a proxy stream"))
        print(json.dumps({{"ids": [answer.sdk_http_response.headers["helicone-id"],
                                   chunks[0].sdk_http_response.headers["helicone-id"]],
                          "texts": [answer.text, "".join(c.text or "" for c in chunks)]}}))
    """)

    assert out["texts"] == ["Mock reply to: through the proxy", "Mock reply to: a proxy stream"]
    assert [seen["headers"]["x-goog-api-key"] for seen in mock_provider.requests()] == [CLIENT_KEY, CLIENT_KEY]
    plain, streamed = (gemini_gateway.row(request_id) for request_id in out["ids"])
    for row in (plain, streamed):
        assert (row["way"], row["host"], row["provider"], row["status"]) == ("proxy", HOST, "google", 200)
    assert (plain["model"], plain["stream"], plain["input_tokens"], plain["output_tokens"]) == (
        "gemini-2.0-flash", False, 7, 6)
    assert plain["cost_usd"] == cost_of(7, 6, "0.10", "0.40")
    assert (streamed["model"], streamed["stream"], streamed["input_tokens"], streamed["output_tokens"]) == (
        "gemini-2.5-flash", True, 7, 6)
    assert streamed["cost_usd"] == cost_of(7, 6, "0.30", "2.50")


def proxy_curl(gateway, path: str, body: dict | None = None, *headers: str):
    """curl through the proxy to Google's host, trusting llmtap's CA."""
    data = ("-X", "POST", "-H", "content-type: application/json", "-d", json.dumps(body)) if body is not None else ()
    return curl("--proxy", gateway.proxy_url, "--cacert", str(gateway.ca_bundle), *data,
                *(arg for header in headers for arg in ("-H", header)), f"https://{HOST}{path}")


def test_a_call_without_a_key_is_refused_by_google_and_logged(gemini_gateway):
    result = proxy_curl(gemini_gateway, "/v1beta/models/gemini-2.0-flash:generateContent",
                        {"contents": [{"parts": [{"text": "no key"}]}]})

    assert result.status == 403 and result.json()["error"]["status"] == "PERMISSION_DENIED"
    row = gemini_gateway.row(result.headers["helicone-id"])
    assert (row["provider"], row["status"], row["cost_usd"], row["price_source"]) == (
        "google", 403, 0, "not-billed")
    assert row["error"].startswith("403: Method doesn't allow unregistered callers")


def test_an_unknown_gemini_endpoint_passes_through_and_is_logged(gemini_gateway, mock_provider):
    result = proxy_curl(gemini_gateway, "/v1beta/models/gemini-2.0-flash:embedContent",
                        {"content": {"parts": [{"text": "embed me"}]}}, f"x-goog-api-key: {CLIENT_KEY}")

    assert result.status == 404  # the mock does not serve it: what the provider said reaches the client
    assert mock_provider.requests() == []  # the mock records only the endpoints it serves
    row = gemini_gateway.row(result.headers["helicone-id"])
    assert (row["way"], row["provider"], row["path"], row["status"]) == (
        "proxy", "google", "/v1beta/models/gemini-2.0-flash:embedContent", 404)
    assert row["latency_ms"] > 0 and json.loads(row["request_body"]) == {"content": {"parts": [{"text": "embed me"}]}}


def test_the_key_is_never_kept_in_the_log_the_spool_or_saved_flows(fresh_gateway, mock_provider, tmp_path):
    saved = tmp_path / "saved.flows"
    gateway = fresh_gateway({"providers": {"google": {"upstream": mock_provider.url}}},
                            env={"GEMINI_API_KEY": GEMINI_ENV_KEY},
                            args=("--", "--set", "flow_detail=4", "--set", f"save_stream_file={saved}"))
    body = {"contents": [{"parts": [{"text": "keep my key secret"}]}]}
    via_query = proxy_curl(gateway, f"/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key={CLIENT_KEY}",
                           body)
    via_header = proxy_curl(gateway, "/v1beta/models/gemini-2.0-flash:generateContent", body,
                            f"x-goog-api-key: {CLIENT_KEY}")
    at_gateway = curl("-X", "POST", "-H", "content-type: application/json", "-d", json.dumps(body),
                      f"{gateway.base_url.removesuffix('/v1')}/v1beta/models/gemini-2.0-flash:generateContent"
                      f"?key={CLIENT_KEY}")
    assert [via_query.status, via_header.status, at_gateway.status] == [200, 200, 200]
    assert via_query.body.count("data: ") == 7  # one event a word
    received = [seen["path"] + json.dumps(seen["headers"]) for seen in mock_provider.requests()]
    assert CLIENT_KEY in received[0] and CLIENT_KEY in received[1], "the client's own key reached Google"
    assert CLIENT_KEY not in received[2] and GEMINI_ENV_KEY in received[2], "at the gateway, llmtap's key replaced it"

    rows = gateway.rows(count=3)
    assert [row["path"] for row in rows] == [
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse&key=redacted",
        "/v1beta/models/gemini-2.0-flash:generateContent",
        "/v1beta/models/gemini-2.0-flash:generateContent?key=redacted"]
    assert [row["input_tokens"] for row in rows] == [8, 8, 8]
    in_duckdb = json.dumps([list(map(str, row)) for row in gateway.query("SELECT * FROM requests")])
    assert gateway.stop() == 0

    with saved.open("rb") as flows:  # what mitmweb shows and saves
        assert len(list(io.FlowReader(flows).stream())) == 3
    artefacts = [gateway.log_path, saved, *(p for p in (gateway.workdir / "data").rglob("*") if p.is_file())]
    assert any(p.suffix == ".duckdb" for p in artefacts)
    for text, where in [(in_duckdb, "rows"), *((p.read_bytes().decode("latin-1"), str(p)) for p in artefacts)]:
        assert CLIENT_KEY not in text and GEMINI_ENV_KEY not in text, f"{where} holds a key"


def test_a_stream_falling_back_to_another_provider_keeps_alt_sse_and_never_carries_the_clients_key(
        fresh_gateway, mock_provider):
    gateway = fresh_gateway({"providers": {
        "google": {"upstream": mock_provider.url},
        "google-backup": {"upstream": mock_provider.url, "api_key_env": "GEMINI_BACKUP_KEY", "prices_provider": "google",
                          "paths": {"gemini_generate": "/v1beta/models/{model}:generateContent"}}}},
        env={"GEMINI_API_KEY": GEMINI_ENV_KEY, "GEMINI_BACKUP_KEY": "gemini-backup-key-4567"})
    mock_provider.script({"status": 503})
    result = curl("-X", "POST", f"{gateway.base_url.removesuffix('/v1')}/v1beta/models/gemini-2.0-flash:"
                  f"streamGenerateContent?alt=sse&key={CLIENT_KEY}", "-H", "content-type: application/json",
                  "-H", "Helicone-Fallback-Model: google-backup/gemini-2.5-flash",
                  "-d", json.dumps({"contents": [{"role": "user", "parts": [{"text": "backup stream"}]}]}))
    assert result.status == 200 and result.body.startswith("data: ")  # events, as the client asked
    primary, fallback = mock_provider.requests()
    assert primary["path"] == "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    assert fallback["path"] == "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"  # no client key=
    assert fallback["headers"]["x-goog-api-key"] == "gemini-backup-key-4567"
    row = gateway.row(result.headers["helicone-id"])
    assert (row["provider"], row["model"], row["stream"], row["attempts"]) == (
        "google-backup", "gemini-2.5-flash", True, 2)
