"""The OpenAI-compatible providers built in beside OpenAI and Anthropic (DeepSeek, xAI, Together, Fireworks,
OpenRouter; Groq, Mistral, and Google's and Anthropic's own compatible endpoints), Azure OpenAI's deployments, and self-hosted servers with prices of their own: each routed, logged and
priced at genai-prices' published price, through the way in its users use.

Every provider's upstream is the mock, which speaks each one's paths; costs are hand-computed from genai-prices'
per-million prices, named beside each test.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, time
from decimal import Decimal

import openai
import pytest

from conftest import ANTHROPIC_ENV_KEY, curl, shared_gateway
from test_proxy import run_client

MTOK = Decimal(1_000_000)
ENV_KEYS = {"DEEPSEEK_API_KEY": "sk-deepseek-env-key", "XAI_API_KEY": "xai-env-key",
            "TOGETHER_API_KEY": "together-env-key", "FIREWORKS_API_KEY": "fw-env-key",
            "OPENROUTER_API_KEY": "sk-or-env-key", "AZURE_OPENAI_API_KEY": "azure-env-key-0123456789abcdef",
            "GROQ_API_KEY": "gsk-env-key", "MISTRAL_API_KEY": "mistral-env-key", "GEMINI_API_KEY": "gemini-env-key"}
AZURE_CLIENT_KEY = "azure-client-key-fedcba9876543210"
API_VERSION = "2024-10-21"


def providers_on(mock) -> dict:
    built_in = {name: {"upstream": mock.url}
                for name in ("deepseek", "xai", "together", "fireworks", "openrouter", "groq", "mistral", "google")}
    return {
        "providers": built_in | {
            # As config/llmtap.yaml shows it: the resource's host (any, on the proxy way in), its deployments by name
            # (`azure/<deployment>` on the gateway way in), the key in `api-key`, Azure's prices.
            # Its deployments' names as models: what openai.AzureOpenAI pointed at the gateway asks for.
            "azure": {"hosts": ["*.openai.azure.com"], "upstream": mock.url, "api_key_env": "AZURE_OPENAI_API_KEY",
                      "auth_header": "api-key", "prices_provider": "azure", "models": ["prod-*"],
                      "paths": {"openai_chat": f"/openai/deployments/{{model}}/chat/completions"
                                               f"?api-version={API_VERSION}",
                                "openai_embeddings": f"/openai/deployments/{{model}}/embeddings"
                                                     f"?api-version={API_VERSION}"}},
            # A self-hosted vLLM server: its models are no one's in genai-prices, so config prices them.
            "vllm": {"upstream": mock.url, "models": ["Qwen/*"]},
        },
        "pricing": [{"model": "Qwen/Qwen2.5-*", "provider": "vllm", "input_per_mtok": 0.5, "output_per_mtok": 1.5},
                    # Named by llmtap's provider name, as README writes entries; its genai-prices id is `x-ai`.
                    {"model": "grok-9-private", "provider": "xai", "input_per_mtok": 1, "output_per_mtok": 2}],
    }


gw = shared_gateway(providers_on, env=ENV_KEYS)


def cost(input_tokens: int, output_tokens: int, input_per_mtok: str, output_per_mtok: str) -> Decimal:
    return (input_tokens * Decimal(input_per_mtok) + output_tokens * Decimal(output_per_mtok)) / MTOK


def client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key="unused", max_retries=0)


def ask(gateway, model: str, content: str, stream: bool = False, sdk: openai.OpenAI | None = None, **extra):
    """One chat call through the gateway (with `sdk`, else an OpenAI client of its base URL); its row."""
    sdk = sdk or client(gateway)
    if stream:
        with sdk.chat.completions.with_streaming_response.create(
                model=model, stream=True, messages=[{"role": "user", "content": content}], **extra) as response:
            text = "".join(chunk.choices[0].delta.content or "" for chunk in response.parse() if chunk.choices)
            request_id = response.headers["helicone-id"]
    else:
        raw = sdk.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": content}], **extra)
        text, request_id = raw.parse().choices[0].message.content, raw.headers["helicone-id"]
    assert text == f"Mock reply to: {content}"
    return gateway.row(request_id)


def sent(mock, content: str) -> dict:
    [request] = [r for r in mock.requests() if content in json.dumps(r.get("body"))]
    return request


# The mock counts words: a one-message prompt of N words is N + 4 tokens, its reply ("Mock reply to: ...") N + 3.

def test_deepseek_chat_is_routed_by_its_name_and_priced_at_its_hour(gw, mock_provider):
    row = ask(gw, "deepseek-chat", "hello deepseek")
    request = sent(mock_provider, "hello deepseek")
    assert request["path"] == "/chat/completions"  # DeepSeek's base URL has no /v1
    assert request["headers"]["authorization"] == "Bearer sk-deepseek-env-key"
    assert (row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == ("deepseek", "deepseek-chat",
                                                                                          6, 5)
    # deepseek-chat: $0.27 in / $1.10 out per million from 00:30 to 16:30 UTC, half that ($0.135 / $0.55) otherwise.
    peak = time(0, 30) <= row["created_at"].astimezone(UTC).time() < time(16, 30)
    assert row["cost_usd"] == (cost(6, 5, "0.27", "1.10") if peak else cost(6, 5, "0.135", "0.55"))
    assert row["price_source"] == "genai-prices"


@pytest.mark.parametrize("model, provider, path, key, input_per_mtok, output_per_mtok", [
    # genai-prices' prices per million tokens, input and output, for each model
    ("llama-3.1-8b-instant", "groq", "/openai/v1/chat/completions", "Bearer gsk-env-key", "0.05", "0.08"),
    ("mistral-small-latest", "mistral", "/v1/chat/completions", "Bearer mistral-env-key", "0.15", "0.6"),
    ("gemini-2.0-flash", "google", "/v1beta/openai/chat/completions", "Bearer gemini-env-key", "0.10", "0.4"),
    ("claude-3-5-haiku-latest", "anthropic", "/v1/chat/completions", f"Bearer {ANTHROPIC_ENV_KEY}", "0.80", "4"),
])
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_compatible_endpoints_of_groq_mistral_google_and_anthropic_are_routed_and_priced(
        gw, mock_provider, model, provider, path, key, input_per_mtok, output_per_mtok, stream):
    content = f"hello {provider} {'stream' if stream else 'json'}"
    row = ask(gw, model, content, stream=stream)
    request = sent(mock_provider, content)
    assert (request["path"], request["headers"]["authorization"]) == (path, key)
    assert (row["provider"], row["model"], row["stream"]) == (provider, model, stream)
    assert (row["input_tokens"], row["output_tokens"]) == (7, 6)
    assert row["cost_usd"] == cost(7, 6, input_per_mtok, output_per_mtok) and row["price_source"] == "genai-prices"


def test_grok_streams_through_the_gateway_priced_as_xai(gw, mock_provider):
    row = ask(gw, "grok-3-mini", "stream from grok please", stream=True)
    assert sent(mock_provider, "stream from grok please")["headers"]["authorization"] == "Bearer xai-env-key"
    assert (row["provider"], row["model"], row["stream"]) == ("xai", "grok-3-mini", True)
    assert (row["input_tokens"], row["output_tokens"]) == (8, 7)
    assert row["cost_usd"] == cost(8, 7, "0.30", "0.50")  # grok-3-mini (genai-prices' x-ai): $0.30 in, $0.50 out


def test_grok_reasoning_tokens_are_billed_as_output_as_xai_counts_them(gw, mock_provider):
    # xAI's completion_tokens leave out reasoning_tokens, which it bills as output too (genai-prices' x-ai extractor).
    mock_provider.script({"usage": {"completion_tokens_details": {"reasoning_tokens": 20}}})
    row = ask(gw, "grok-3-mini", "think first grok")
    assert (row["input_tokens"], row["output_tokens"], row["reasoning_tokens"]) == (7, 6 + 20, 20)
    assert row["cost_usd"] == cost(7, 26, "0.30", "0.50")  # grok-3-mini: $0.30 in, $0.50 out


def test_together_is_reached_by_name_so_groqs_patterns_keep_their_models(gw, mock_provider):
    row = ask(gw, "together/meta-llama/Llama-3.3-70B-Instruct-Turbo", "llama on together")
    request = sent(mock_provider, "llama on together")
    assert request["body"]["model"] == "meta-llama/Llama-3.3-70B-Instruct-Turbo"  # Together's own name for it
    assert request["headers"]["authorization"] == "Bearer together-env-key"
    assert (row["provider"], row["model"], row["model_requested"]) == (
        "together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "together/meta-llama/Llama-3.3-70B-Instruct-Turbo")
    # meta-llama/Llama-3.3-70B-Instruct-Turbo on together: $0.88 in and out.
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (7, 6, cost(7, 6, "0.88", "0.88"))


def test_a_model_genai_prices_does_not_know_is_logged_unpriced_with_the_reason_never_zero(gw):
    row = ask(gw, "together/acme/private-model-7b", "nobody prices this", stream=True)
    assert (row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == (
        "together", "acme/private-model-7b", 7, 6)
    assert row["cost_usd"] is None and row["price_source"] is None
    assert row["price_error"] == ("genai-prices has no price for together/acme/private-model-7b; "
                                  "add it under 'pricing' in config")


def test_fireworks_streams_its_account_model_ids_to_its_inference_path(gw, mock_provider):
    model = "accounts/fireworks/models/llama-v3p1-8b-instruct"
    row = ask(gw, model, "fireworks stream", stream=True)
    request = sent(mock_provider, "fireworks stream")
    assert request["path"] == "/inference/v1/chat/completions"
    assert request["headers"]["authorization"] == "Bearer fw-env-key"
    assert (row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == ("fireworks", model, 6, 5)
    assert row["cost_usd"] == cost(6, 5, "0.20", "0.20")  # llama-v3p1-8b-instruct on fireworks: $0.20 in and out


def test_openrouter_vendor_models_are_reached_by_name(gw, mock_provider):
    row = ask(gw, "openrouter/openai/gpt-4o-mini", "route me via openrouter")
    request = sent(mock_provider, "route me via openrouter")
    assert (request["path"], request["body"]["model"]) == ("/api/v1/chat/completions", "openai/gpt-4o-mini")
    assert request["headers"]["authorization"] == "Bearer sk-or-env-key"
    assert (row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == (
        "openrouter", "openai/gpt-4o-mini", 8, 7)
    assert row["cost_usd"] == cost(8, 7, "0.15", "0.60")  # openai/gpt-4o-mini on openrouter: $0.15 in, $0.60 out


def test_azure_deployment_through_the_gateway_gets_the_key_in_api_key_and_configs_api_version(gw, mock_provider):
    row = ask(gw, "azure/prod-chat", "azure via gateway", extra_query={"api-version": "1999-01-01", "trace": "on"})
    request = sent(mock_provider, "azure via gateway")
    # The deployment fills the provider's path; its api-version is config's, the client's other parameters follow.
    assert request["path"] == f"/openai/deployments/prod-chat/chat/completions?api-version={API_VERSION}&trace=on"
    assert request["headers"]["api-key"] == ENV_KEYS["AZURE_OPENAI_API_KEY"]
    assert "authorization" not in request["headers"]
    assert (row["provider"], row["model"], row["model_requested"]) == (
        "azure", "gpt-4o-mini-2024-07-18", "azure/prod-chat")  # the model the deployment runs, from the answer
    # gpt-4o-mini on azure: $0.15 in, $0.60 out.
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (7, 6, cost(7, 6, "0.15", "0.60"))


def test_azure_deployment_streams_through_the_gateway(gw):
    row = ask(gw, "azure/prod-chat", "azure stream via gateway", stream=True)
    assert (row["provider"], row["model"], row["stream"]) == ("azure", "gpt-4o-mini-2024-07-18", True)
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (8, 7, cost(8, 7, "0.15", "0.60"))


@pytest.mark.parametrize("stream", [False, True])
def test_azure_openai_sdk_pointed_at_the_gateway_is_routed_by_its_deployment(gw, mock_provider, stream):
    azure = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{gw.gateway_port}", api_key="unused",
                               api_version="2024-06-01", max_retries=0)
    content = f"azure sdk at the gateway {stream}"
    row = ask(gw, "prod-chat", content, stream=stream, sdk=azure)
    request = sent(mock_provider, content)
    assert request["path"] == f"/openai/deployments/prod-chat/chat/completions?api-version={API_VERSION}"  # config's
    assert request["headers"]["api-key"] == ENV_KEYS["AZURE_OPENAI_API_KEY"]  # llmtap's key, not the app's
    assert (row["way"], row["provider"], row["model"], row["model_requested"], row["stream"]) == (
        "gateway", "azure", "gpt-4o-mini-2024-07-18", "prod-chat", stream)
    # gpt-4o-mini on azure: $0.15 in, $0.60 out.
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (10, 9, cost(10, 9, "0.15", "0.60"))


def test_azure_openai_sdk_embeddings_at_the_gateway_are_routed_by_the_deployment_and_priced(gw, mock_provider):
    azure = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{gw.gateway_port}", api_key="unused",
                               api_version="2024-06-01", max_retries=0)
    raw = azure.embeddings.with_raw_response.create(model="prod-embed", input="embed me on azure please")
    assert len(raw.parse().data[0].embedding) == 1536
    request = sent(mock_provider, "embed me on azure please")
    assert request["path"] == f"/openai/deployments/prod-embed/embeddings?api-version={API_VERSION}"  # config's
    assert request["headers"]["api-key"] == ENV_KEYS["AZURE_OPENAI_API_KEY"]
    row = gw.row(raw.headers["helicone-id"])
    assert (row["provider"], row["model"], row["model_requested"]) == ("azure", "text-embedding-3-small", "prod-embed")
    # text-embedding-3-small on azure (genai-prices): $0.02 per million input tokens; the mock counts 5 words.
    assert (row["input_tokens"], row["cost_usd"]) == (5, cost(5, 0, "0.02", "0"))


def test_a_fallback_to_an_azure_deployment_fills_its_path_and_sends_its_key_in_api_key(gw, mock_provider):
    mock_provider.script({"model": "gpt-4o", "status": 500})
    row = ask(gw, "gpt-4o", "fall back to azure", extra_headers={"Helicone-Fallback-Model": "azure/prod-chat"})
    primary, fallback = [r for r in mock_provider.requests() if "fall back to azure" in json.dumps(r.get("body"))]
    assert primary["path"] == "/v1/chat/completions"
    assert fallback["path"] == f"/openai/deployments/prod-chat/chat/completions?api-version={API_VERSION}"
    assert fallback["headers"]["api-key"] == ENV_KEYS["AZURE_OPENAI_API_KEY"]
    assert "authorization" not in fallback["headers"]  # OpenAI's key goes to OpenAI only
    assert (row["provider"], row["model"], row["fallback_from"]) == ("azure", "gpt-4o-mini-2024-07-18", "gpt-4o")
    assert (row["input_tokens"], row["output_tokens"]) == (8, 7)
    assert row["cost_usd"] == cost(8, 7, "0.15", "0.60")  # gpt-4o-mini on azure: $0.15 in, $0.60 out


@pytest.mark.parametrize("stream", [False, True])
def test_azure_openai_sdk_with_a_deployment_is_routed_by_the_deployment_in_its_url(gw, mock_provider, stream):
    # AzureOpenAI(azure_deployment=...) names the deployment in the URL; the body's model is whatever the app passes
    # (often the model the deployment runs). Azure answers by the URL: so does the gateway.
    azure = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{gw.gateway_port}", api_key="unused",
                               azure_deployment="prod-chat", api_version="2024-06-01", max_retries=0)
    content = f"deployment in the url {stream}"
    row = ask(gw, "gpt-4o-mini", content, stream=stream, sdk=azure)
    request = sent(mock_provider, content)
    assert request["path"] == f"/openai/deployments/prod-chat/chat/completions?api-version={API_VERSION}"
    assert request["headers"]["api-key"] == ENV_KEYS["AZURE_OPENAI_API_KEY"] and "authorization" not in request[
        "headers"]
    assert (row["provider"], row["model_requested"]) == ("azure", "prod-chat")


def test_an_azure_deployment_url_named_after_another_providers_model_goes_there_without_api_version(
        gw, mock_provider):
    azure = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{gw.gateway_port}", api_key="unused",
                               azure_deployment="gpt-4o-mini", api_version="2024-06-01", max_retries=0)
    row = ask(gw, "prod-chat", "deployment named gpt-4o-mini", sdk=azure)
    request = sent(mock_provider, "deployment named gpt-4o-mini")
    assert request["path"] == "/v1/chat/completions"  # OpenAI's endpoint: Azure's api-version means nothing there
    assert request["body"]["model"] == "gpt-4o-mini"  # the deployment's, which routed it
    assert (row["provider"], row["model_requested"]) == ("openai", "gpt-4o-mini")


def test_an_azure_deployment_no_provider_serves_is_refused_naming_it(gw, mock_provider):
    azure = openai.AzureOpenAI(azure_endpoint=f"http://127.0.0.1:{gw.gateway_port}", api_key="unused",
                               azure_deployment="staging-chat", api_version="2024-06-01", max_retries=0)
    with pytest.raises(openai.BadRequestError) as refused:
        azure.chat.completions.create(model="prod-chat", messages=[{"role": "user", "content": "unserved deployment"}])
    assert refused.value.body["type"] == "llmtap_unroutable_model" and "staging-chat" in refused.value.body["message"]
    assert not [r for r in mock_provider.requests() if "unserved deployment" in json.dumps(r.get("body"))]
    row = gw.row(refused.value.response.headers["helicone-id"])
    assert (row["status"], row["model_requested"]) == (400, "staging-chat")


def test_a_fallback_to_another_azure_deployment_goes_to_that_deployments_url(gw, mock_provider):
    mock_provider.script({"status": 503})
    row = ask(gw, "azure/prod-chat", "azure to azure fallback", extra_query={"trace": "on"},
              extra_headers={"Helicone-Fallback-Model": "azure/prod-4o"})
    paths = [r["path"] for r in mock_provider.requests() if "azure to azure fallback" in json.dumps(r.get("body"))]
    assert paths == [f"/openai/deployments/prod-chat/chat/completions?api-version={API_VERSION}&trace=on",
                     f"/openai/deployments/prod-4o/chat/completions?api-version={API_VERSION}&trace=on"]
    # Azure answers by the URL's deployment: prod-4o runs gpt-4o, at $2.50 in, $10 out on azure.
    assert (row["provider"], row["model"], row["fallback_from"], row["attempts"]) == (
        "azure", "gpt-4o-2024-08-06", "azure/prod-chat", 2)
    assert (row["input_tokens"], row["output_tokens"], row["cost_usd"]) == (8, 7, cost(8, 7, "2.50", "10"))


@pytest.mark.parametrize("model", ["azure/..", "azure/."])
def test_a_model_that_would_change_the_upstream_path_is_refused_and_logged(gw, mock_provider, model):
    content = f"path segment {model}"
    with pytest.raises(openai.BadRequestError) as refused:
        client(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": content}])
    assert refused.value.body["type"] == "llmtap_invalid_model" and model in refused.value.body["message"]
    assert not [r for r in mock_provider.requests() if content in json.dumps(r.get("body"))]  # sent nowhere
    row = gw.row(refused.value.response.headers["helicone-id"])
    assert (row["status"], row["model_requested"], row["provider"]) == (400, model, "azure")


def test_a_fallback_model_that_would_change_the_upstream_path_is_refused_and_logged(gw, mock_provider):
    with pytest.raises(openai.BadRequestError) as refused:
        client(gw).chat.completions.create(model="azure/prod-chat", messages=[{"role": "user", "content": "dot dot fb"}],
                                           extra_headers={"Helicone-Fallback-Model": "azure/.."})
    assert refused.value.body["type"] == "llmtap_invalid_fallback" and "'..'" in refused.value.body["message"]
    assert not [r for r in mock_provider.requests() if "dot dot fb" in json.dumps(r.get("body"))]  # not even primary
    assert gw.row(refused.value.response.headers["helicone-id"])["status"] == 400


def test_a_proxy_call_to_another_azure_resource_is_not_sent_to_the_configured_one(fresh_gateway):
    # `upstream` is one resource of the entry's `*.` hosts: each resource is its own endpoint, so other-team's call,
    # and its key, go to other-team, never to the configured resource. The resources are under `.test`, a name that
    # never resolves (RFC 6761): the call ends in a 502 whose row says which host llmtap tried.
    azure = {"hosts": ["*.openai.azure.test"], "upstream": "https://my-resource.openai.azure.test",
             "api_key_env": "AZURE_OPENAI_API_KEY", "auth_header": "api-key", "prices_provider": "azure"}
    gateway = fresh_gateway({"providers": {"azure": azure}}, env=ENV_KEYS)
    out = run_client(gateway, f"""
        import json, openai
        azure = openai.AzureOpenAI(azure_endpoint="https://other-team.openai.azure.test", api_key="other-team-key",
                                   api_version="{API_VERSION}", max_retries=0)
        try:
            raw = azure.chat.completions.with_raw_response.create(
                model="prod-chat", messages=[{{"role": "user", "content": "whose key"}}])
        except openai.APIStatusError as e:
            raw = e.response
        print(json.dumps({{"status": raw.status_code, "id": raw.headers.get("helicone-id")}}))
    """)
    row = gateway.row(out["id"])
    assert (row["way"], row["host"], row["provider"]) == ("proxy", "other-team.openai.azure.test", "azure")
    assert row["status"] == out["status"] == 502
    assert "other-team.openai.azure.test" in row["error"] and "my-resource" not in row["error"], row["error"]


def test_a_proxy_call_keeps_the_upstreams_scheme_port_and_prefix_when_the_upstream_is_one_of_its_hosts(
        fresh_gateway, mock_provider):
    # A self-hosted server's entry whose upstream is one of its hosts, on its own port (the mock's, as vLLM's :8000):
    # a client that names the host without the port still reaches the upstream's port, as a plain-HTTP caller of
    # api.openai.com is sent on to https.
    mock_port = int(mock_provider.url.rsplit(":", 1)[1])
    gateway = fresh_gateway({"providers": {"selfhosted": {"hosts": ["127.0.0.1"], "models": ["Qwen/*"], "free": True,
                                                          "upstream": f"http://127.0.0.1:{mock_port}"}}})
    content = "a proxy call to the upstream's port"
    result = curl("--proxy", gateway.proxy_url, "http://127.0.0.1/v1/chat/completions",
                  "-H", "authorization: Bearer sk-client-own-key", "-H", "content-type: application/json",
                  "-d", json.dumps({"model": "Qwen/Qwen2.5-7B", "messages": [{"role": "user", "content": content}]}))
    assert result.status == 200, result.body[:300]
    assert sent(mock_provider, content)["path"] == "/v1/chat/completions"
    (row,) = gateway.rows("way = 'proxy'")
    assert (row["provider"], row["status"]) == ("selfhosted", 200)


def test_a_self_hosted_server_is_priced_from_config(gw, mock_provider):
    row = ask(gw, "Qwen/Qwen2.5-7B-Instruct", "local vllm answers")
    assert "authorization" in sent(mock_provider, "local vllm answers")["headers"]  # the app's own key, if any
    assert (row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == (
        "vllm", "Qwen/Qwen2.5-7B-Instruct", 7, 6)
    assert row["cost_usd"] == cost(7, 6, "0.5", "1.5") and row["price_source"] == "config"  # its `pricing` entry


def test_a_pricing_entry_naming_the_provider_as_llmtap_does_prices_its_calls_and_costs_as(gw, mock_provider):
    row = ask(gw, "grok-9-private", "private grok answers")
    assert (row["provider"], row["model"], row["input_tokens"], row["output_tokens"]) == (
        "xai", "grok-9-private", 7, 6)
    assert row["cost_usd"] == cost(7, 6, "1", "2") and row["price_source"] == "config"  # `provider: xai` entry
    result = subprocess.run([sys.executable, "-m", "llmtap.cli", "costs", "--as", "xai/grok-9-private", "--json",
                             "--config", str(gw.config_path)], cwd=gw.workdir, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    [grok] = [group for line in result.stdout.splitlines()
              if (group := json.loads(line, parse_float=Decimal))["model"] == "grok-9-private"]
    assert grok["as_cost_usd"] == cost(7, 6, "1", "2")  # re-priced as itself: the same entry


def test_apps_with_their_own_base_urls_are_logged_through_the_proxy_with_their_own_keys(gw, mock_provider):
    out = run_client(gw, """
        import json, openai
        deepseek = openai.OpenAI(base_url="https://api.deepseek.com", api_key="sk-app-deepseek", max_retries=0)
        raw = deepseek.chat.completions.with_raw_response.create(
            model="deepseek-chat", messages=[{"role": "user", "content": "proxy to deepseek"}])
        openrouter = openai.OpenAI(base_url="https://openrouter.ai/api/v1", api_key="sk-or-app", max_retries=0)
        with openrouter.chat.completions.with_streaming_response.create(
                model="openai/gpt-4o-mini", stream=True,
                messages=[{"role": "user", "content": "proxy stream to openrouter"}]) as streamed:
            text = "".join(c.choices[0].delta.content or "" for c in streamed.parse() if c.choices)
            streamed_id = streamed.headers["helicone-id"]
        print(json.dumps({"deepseek": raw.headers["helicone-id"], "openrouter": streamed_id, "text": text}))
    """)
    assert out["text"] == "Mock reply to: proxy stream to openrouter"
    assert sent(mock_provider, "proxy to deepseek")["headers"]["authorization"] == "Bearer sk-app-deepseek"
    assert sent(mock_provider, "proxy stream to openrouter")["headers"]["authorization"] == "Bearer sk-or-app"
    deepseek, openrouter = gw.row(out["deepseek"]), gw.row(out["openrouter"])
    assert (deepseek["way"], deepseek["host"], deepseek["provider"], deepseek["model"]) == (
        "proxy", "api.deepseek.com", "deepseek", "deepseek-chat")
    peak = time(0, 30) <= deepseek["created_at"].astimezone(UTC).time() < time(16, 30)
    assert deepseek["cost_usd"] == (cost(7, 6, "0.27", "1.10") if peak else cost(7, 6, "0.135", "0.55"))
    assert (openrouter["way"], openrouter["host"], openrouter["provider"], openrouter["stream"]) == (
        "proxy", "openrouter.ai", "openrouter", True)
    assert (openrouter["input_tokens"], openrouter["output_tokens"]) == (8, 7)
    assert openrouter["cost_usd"] == cost(8, 7, "0.15", "0.60")


def test_azure_openai_sdk_through_the_proxy_is_logged_and_priced_and_its_key_is_never_stored(gw, mock_provider):
    out = run_client(gw, f"""
        import json, openai
        azure = openai.AzureOpenAI(azure_endpoint="https://mockres.openai.azure.com", api_key="{AZURE_CLIENT_KEY}",
                                   api_version="{API_VERSION}", max_retries=0)
        raw = azure.chat.completions.with_raw_response.create(
            model="prod-chat", messages=[{{"role": "user", "content": "azure through the proxy"}}])
        with azure.chat.completions.with_streaming_response.create(
                model="prod-chat", stream=True, messages=[{{"role": "user", "content": "azure proxy stream"}}]) as s:
            text = "".join(c.choices[0].delta.content or "" for c in s.parse() if c.choices)
            streamed_id = s.headers["helicone-id"]
        print(json.dumps({{"json": raw.headers["helicone-id"], "model": raw.parse().model, "stream": streamed_id,
                          "text": text}}))
    """)
    assert out["model"] == "gpt-4o-mini-2024-07-18" and out["text"] == "Mock reply to: azure proxy stream"
    request = sent(mock_provider, "azure through the proxy")
    assert request["path"] == f"/openai/deployments/prod-chat/chat/completions?api-version={API_VERSION}"
    assert request["headers"]["api-key"] == AZURE_CLIENT_KEY  # the app's own key, where Azure reads it
    for request_id, stream, tokens in ((out["json"], False, (8, 7)), (out["stream"], True, (7, 6))):
        row = gw.row(request_id)
        assert (row["way"], row["host"], row["provider"], row["model"], row["stream"]) == (
            "proxy", "mockres.openai.azure.com", "azure", "gpt-4o-mini-2024-07-18", stream)
        assert (row["input_tokens"], row["output_tokens"]) == tokens
        assert row["cost_usd"] == cost(*tokens, "0.15", "0.60")  # gpt-4o-mini on azure: $0.15 in, $0.60 out
        assert row["key_hash"].startswith("sha256:")
    assert_never_stored(gw, AZURE_CLIENT_KEY)


def test_the_gateways_azure_key_is_never_stored(gw):
    ask(gw, "azure/prod-chat", "azure key stays secret")
    assert_never_stored(gw, ENV_KEYS["AZURE_OPENAI_API_KEY"])


def assert_never_stored(gateway, key: str) -> None:
    """`key` is in no row (any column) and in no file the gateway wrote: its output, the spool, the log."""
    rows = gateway.rows(count=1)
    assert rows and key not in json.dumps(rows, default=str)
    assert key not in gateway.output()
    for path in gateway.workdir.rglob("*"):
        if path.is_file():
            assert key.encode() not in path.read_bytes(), path


@pytest.mark.parametrize("model", ["deepseek-ai/DeepSeek-V3", "nobody-knows-this-model"])
def test_a_model_no_provider_claims_is_refused_with_the_routable_ones(gw, model):
    with pytest.raises(openai.BadRequestError) as refused:
        client(gw).chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert refused.value.body["type"] == "llmtap_unroutable_model"
    assert "<provider>/<model>" in refused.value.body["message"]


def test_the_model_list_names_each_providers_models_as_a_client_sends_them(gw):
    owners = {model.id: model.owned_by for model in client(gw).models.list()}
    assert owners["deepseek-chat"] == "deepseek" and owners["grok-3-mini"] == "xai"
    # genai-prices' id for it is `llama-v3p1-8b-instruct`; Fireworks' API names it so:
    assert owners["accounts/fireworks/models/llama-v3p1-8b-instruct"] == "fireworks"
    # Reached by name only, so listed by name.
    assert owners["together/meta-llama/Llama-3.3-70B-Instruct-Turbo"] == "together"
    assert owners["openrouter/openai/gpt-4o-mini"] == "openrouter"
    assert owners["meta-llama/llama-4-scout-17b-16e-instruct"] == "groq"
    assert not any(name.startswith(("together/", "openrouter/")) for name, owner in owners.items()
                   if owner not in ("together", "openrouter"))
