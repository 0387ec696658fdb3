"""Rate-limit policies on llmtap's real pipeline, with time moved by hand: what a client sees when its quota is
reached, and when the window frees again. (Window arithmetic alone: test_ratelimit_windows.py.)"""

from __future__ import annotations

import json

from mitmproxy import http

from .conftest import chat_body, completion


def per_user(policy: str, user: str = "ann") -> dict[str, str]:
    return {"Helicone-RateLimit-Policy": policy, "Helicone-User-Id": user}


def error_of(flow: http.HTTPFlow) -> dict:
    assert flow.response is not None
    return json.loads(flow.response.content or b"{}")["error"]


def test_quota_reached_is_a_429_with_helicones_headers_until_the_window_frees(llmtap, monotonic_clock):
    pipeline = llmtap()
    headers = per_user("2;w=60;s=user")
    answered = [pipeline.call(headers=headers) for _ in range(2)]
    assert [f.response.status_code for f in answered] == [200, 200]
    assert [f.response.headers["helicone-ratelimit-remaining"] for f in answered] == ["1", "0"]

    refused = pipeline.call(headers=headers)
    assert refused.response.status_code == 429
    assert refused.response.headers["helicone-ratelimit-limit"] == "2"
    assert refused.response.headers["helicone-ratelimit-remaining"] == "0"
    assert refused.response.headers["helicone-ratelimit-policy"] == "2;w=60;s=user"
    assert refused.response.headers["retry-after"] == "60"
    error = error_of(refused)
    assert error["type"] == "llmtap_rate_limited" and "for user 'ann'" in error["message"]
    assert error["policy"] == "2;w=60;s=user"

    monotonic_clock.advance(59.5)
    still = pipeline.call(headers=headers)
    assert still.response.status_code == 429 and still.response.headers["retry-after"] == "1"
    monotonic_clock.advance(0.5)  # both calls are now exactly 60 s old: out of the window
    again = pipeline.call(headers=headers)
    assert again.response.status_code == 200 and again.response.headers["helicone-ratelimit-remaining"] == "1"
    assert len(pipeline.provider_requests) == 3  # the refused calls never left

    rows = pipeline.rows()
    assert [r["status"] for r in rows] == [200, 200, 429, 429, 200]
    assert all("llmtap_rate_limited" in r["error"] for r in rows if r["status"] == 429)
    assert [r["attempts"] for r in rows] == [1, 1, 0, 0, 1]


def test_the_window_slides_one_call_at_a_time(llmtap, monotonic_clock):
    pipeline = llmtap()
    headers = per_user("2;w=60;s=user")
    assert pipeline.call(headers=headers).response.status_code == 200  # t = 0
    monotonic_clock.advance(40)
    assert pipeline.call(headers=headers).response.status_code == 200  # t = 40
    monotonic_clock.advance(20)  # t = 60: the first call has left the window, the second has not
    assert pipeline.call(headers=headers).response.status_code == 200
    refused = pipeline.call(headers=headers)
    assert refused.response.status_code == 429 and refused.response.headers["retry-after"] == "40"  # t=40's leaves


def test_users_and_property_values_have_windows_of_their_own(llmtap):
    pipeline = llmtap()
    assert pipeline.call(headers=per_user("1;w=60;s=user", "ann")).response.status_code == 200
    assert pipeline.call(headers=per_user("1;w=60;s=user", "ann")).response.status_code == 429
    assert pipeline.call(headers=per_user("1;w=60;s=user", "bob")).response.status_code == 200
    feature = {"Helicone-RateLimit-Policy": "1;w=60;s=Feature"}
    assert pipeline.call(headers={**feature, "Helicone-Property-Feature": "search"}).response.status_code == 200
    assert pipeline.call(headers={**feature, "Helicone-Property-Feature": "search"}).response.status_code == 429
    assert pipeline.call(headers={**feature, "Helicone-Property-Feature": "chat"}).response.status_code == 200


def test_a_config_policy_counts_for_the_key_owner_it_names(llmtap):
    pipeline = llmtap({
        "gateway": {"keys": [{"owner": "alice", "key": "gw-alice"}, {"owner": "bob", "key": "gw-bob"}]},
        "ratelimit": {"policies": [{"policy": "1;w=60", "key_owner": "alice"}]},
    })
    alice, bob = {"Authorization": "Bearer gw-alice"}, {"Authorization": "Bearer gw-bob"}
    assert pipeline.call(headers=alice).response.headers["helicone-ratelimit-remaining"] == "0"
    refused = pipeline.call(headers=alice)
    assert refused.response.status_code == 429 and refused.response.headers["helicone-ratelimit-policy"] == "1;w=60"
    unlimited = pipeline.call(headers=bob)
    assert unlimited.response.status_code == 200 and "helicone-ratelimit-limit" not in unlimited.response.headers


def one_cent(request: http.Request) -> http.Response:
    """gpt-4o input is $2.50 per million tokens: 4,000 prompt tokens and no output cost exactly one cent."""
    body = completion("spent", model="gpt-4o-2024-08-06", prompt_tokens=4000, completion_tokens=0)
    return http.Response.make(200, json.dumps(body).encode(), {"content-type": "application/json"})


def test_cents_quota_counts_the_priced_cost_and_frees_with_the_window(llmtap, monotonic_clock):
    pipeline = llmtap()
    headers = per_user("1;w=60;u=cents;s=user", "spender")
    first = pipeline.call(chat_body(model="gpt-4o", max_tokens=10), headers, answer=one_cent)
    assert first.response.status_code == 200 and first.response.headers["helicone-ratelimit-remaining"] == "1"
    refused = pipeline.call(chat_body(model="gpt-4o", max_tokens=10), headers, answer=one_cent)
    assert refused.response.status_code == 429 and refused.response.headers["helicone-ratelimit-remaining"] == "0"
    assert "1 cents per 60 s" in error_of(refused)["message"]
    monotonic_clock.advance(60)
    assert pipeline.call(chat_body(model="gpt-4o", max_tokens=10), headers, answer=one_cent).response.status_code == 200
    assert len(pipeline.provider_requests) == 2
    assert [str(r["cost_usd"]) for r in pipeline.rows() if r["status"] == 200] == ["0.0100000000"] * 2


def test_a_failed_call_gives_its_cents_reservation_back(llmtap):
    """A call reserves its estimate (here 16,000 output tokens of gpt-4o: ~16 cents, more than the 1-cent quota; an
    empty window lets it through); failing, it spends nothing, so the next call is let through too."""
    pipeline = llmtap()
    headers = per_user("1;w=60;u=cents;s=user", "unlucky")

    def fails(_request: http.Request) -> http.Response:
        return http.Response.make(500, b'{"error": {"message": "boom"}}', {"content-type": "application/json"})

    big = chat_body(model="gpt-4o", max_tokens=16_000)
    assert pipeline.call(big, headers, answer=fails).response.status_code == 500
    assert pipeline.call(big, headers, answer=one_cent).response.status_code == 200
    assert pipeline.call(big, headers, answer=one_cent).response.status_code == 429
