"""The `Helicone-*` header contract (HEADERS.md), parsed by `parse_helicone_headers` without a proxy."""

from __future__ import annotations

import inspect
import re

import pytest
from llmtap import headers
from llmtap.headers import HeaderError, parse_helicone_headers, unknown_helicone_headers
from llmtap.options import CacheOptions, FallbackOptions, HeliconeOptions, RetryOptions
from llmtap.ratelimit_policy import RateLimitPolicy

REQUEST_ID = "3f1c2b9e-5d4a-4c7b-9e8f-0a1b2c3d4e5f"


def test_every_documented_header_is_parsed_into_typed_options():
    options = parse_helicone_headers([
        ("Helicone-Property-Team", "search"),
        ("Helicone-User-Id", "alice"),
        ("Helicone-Session-Id", "run-42"),
        ("Helicone-Session-Path", "/plan/step-1"),
        ("Helicone-Session-Name", "Trip planner"),
        ("Helicone-Request-Id", REQUEST_ID),
        ("Helicone-Prompt-Id", "greeting-v2"),
        ("Helicone-Omit-Request", "true"),
        ("Helicone-Omit-Response", "false"),
        ("Helicone-Auth", "Bearer gk-secret"),
        ("Helicone-Cache-Enabled", "true"),
        ("Cache-Control", "max-age=3600"),
        ("Helicone-Cache-Bucket-Max-Size", "3"),
        ("Helicone-Cache-Seed", "seed-a"),
        ("Helicone-Cache-Ignore-Keys", "user, metadata"),
        ("Helicone-Retry-Enabled", "true"),
        ("Helicone-Retry-Num", "5"),
        ("Helicone-Retry-Factor", "1.5"),
        ("Helicone-Retry-Min-Timeout", "200"),
        ("Helicone-Retry-Max-Timeout", "4000"),
        ("Helicone-Fallback-Model", "gpt-4o-mini, claude-3-5-haiku-latest"),
        ("Helicone-Fallback-OnCodes", "429,503"),
        ("Helicone-Fallbacks", '[{"bodyKeyOverride": {"model": "gpt-4o-mini"}}]'),
        ("Helicone-RateLimit-Policy", "1000;w=3600;s=user"),
    ])

    assert options == HeliconeOptions(
        properties={"team": "search"},
        user_id="alice",
        session_id="run-42",
        session_path="/plan/step-1",
        session_name="Trip planner",
        request_id=REQUEST_ID,
        prompt_id="greeting-v2",
        omit_request=True,
        omit_response=False,
        auth_key="gk-secret",
        cache=CacheOptions(
            enabled=True, max_age_s=3600, bucket_max_size=3, seed="seed-a", ignore_keys=("user", "metadata")
        ),
        retry=RetryOptions(enabled=True, max_retries=5, factor=1.5, min_timeout_ms=200, max_timeout_ms=4000),
        fallback=FallbackOptions(
            models=("gpt-4o-mini", "claude-3-5-haiku-latest"),
            on_codes=(429, 503),
            targets=({"bodyKeyOverride": {"model": "gpt-4o-mini"}},),
        ),
        ratelimit_policy=RateLimitPolicy(1000, 3600, "request", "user", "1000;w=3600;s=user"),
    )


def test_absent_headers_give_the_documented_defaults():
    options = parse_helicone_headers([("Content-Type", "application/json")])

    assert options.properties == {}
    assert (options.user_id, options.session_id, options.session_path, options.request_id, options.auth_key) == (
        None, None, None, None, None,
    )
    assert (options.omit_request, options.omit_response) == (False, False)
    assert (options.cache.enabled, options.cache.max_age_s, options.cache.bucket_max_size) == (False, 604800, 1)
    assert (options.cache.seed, options.cache.ignore_keys) == (None, ())
    assert options.retry == RetryOptions(
        enabled=False, max_retries=3, factor=2.0, min_timeout_ms=1000, max_timeout_ms=10000
    )
    assert options.fallback.models == ()
    assert options.fallback.on_codes == (429, 500, 502, 503, 504)
    assert options.fallback.targets == ()
    assert options.ratelimit_policy is None


def test_header_names_are_case_insensitive():
    options = parse_helicone_headers([
        ("HELICONE-USER-ID", "alice"),
        ("helicone-cache-enabled", "TRUE"),
        ("hElIcOnE-rEtRy-NuM", "7"),
    ])

    assert options.user_id == "alice"
    assert options.cache.enabled is True
    assert options.retry.max_retries == 7


@pytest.mark.parametrize("sent", ["Helicone-Property-Feature-Name", "helicone-property-Feature-Name"])
def test_property_name_is_stored_lower_cased_whatever_case_was_sent(sent):
    options = parse_helicone_headers([(sent, "Checkout Flow")])

    assert options.properties == {"feature-name": "Checkout Flow"}


def test_property_userid_is_the_user_when_no_user_id_header_is_sent():
    options = parse_helicone_headers([("Helicone-Property-UserId", "bob")])

    assert options.user_id == "bob"


def test_user_id_and_property_userid_saying_the_same_user_are_accepted():
    options = parse_helicone_headers([("Helicone-Property-UserId", "alice"), ("Helicone-User-Id", "alice")])

    assert options.user_id == "alice"


def test_user_id_and_property_userid_naming_two_users_are_malformed():
    """Two spellings of one header (HEADERS.md's alias) that disagree: the client's mistake, refused like any other
    malformed header rather than one silently winning."""
    with pytest.raises(HeaderError) as caught:
        parse_helicone_headers([("Helicone-Property-UserId", "bob"), ("Helicone-User-Id", "alice")])

    assert caught.value.header == "Helicone-Property-UserId"
    assert caught.value.message == ("Helicone-Property-UserId: says 'bob' but Helicone-User-Id says 'alice'; "
                                    "they name the same thing: send one")


def test_cache_control_max_age_sets_the_ttl_when_cache_is_enabled():
    options = parse_helicone_headers([("Helicone-Cache-Enabled", "true"), ("Cache-Control", "public, max-age=120")])

    assert options.cache.max_age_s == 120


def test_cache_control_max_age_is_capped_at_365_days():
    options = parse_helicone_headers([("Helicone-Cache-Enabled", "true"), ("Cache-Control", "max-age=999999999")])

    assert options.cache.max_age_s == 365 * 24 * 3600


def test_cache_control_is_ignored_when_cache_is_not_enabled():
    options = parse_helicone_headers([("Cache-Control", "max-age=120")])

    assert options.cache.max_age_s == 604800


@pytest.mark.parametrize(
    "policy, quota, window_s, unit, segment",
    [
        ("1000;w=3600;s=user", 1000, 3600, "request", "user"),
        ("500;w=86400;u=cents", 500, 86400, "cents", None),
        ("10;w=60;s=Feature", 10, 60, "request", "Feature"),
    ],
)
def test_ratelimit_policy_forms_are_read(policy, quota, window_s, unit, segment):
    options = parse_helicone_headers([("Helicone-RateLimit-Policy", policy)])

    assert options.ratelimit_policy == RateLimitPolicy(quota, window_s, unit, segment, policy)


@pytest.mark.parametrize(
    "name, value, accepted",
    [
        ("Helicone-Cache-Enabled", "yes", "true or false"),
        ("helicone-omit-request", "1", "true or false"),
        ("Helicone-Request-Id", "not-a-uuid", "UUID"),
        ("Helicone-Retry-Num", "three", "whole number"),
        ("Helicone-Retry-Num", "-1", "whole number"),
        ("Helicone-Retry-Factor", "fast", "number from 1 to 10"),
        ("Helicone-Fallback-OnCodes", "429,oops", "status codes"),
        ("Helicone-Fallback-OnCodes", "429,42", "status codes"),
        ("Helicone-Fallback-OnCodes", "429,,500", "comma-separated"),
        # U+00B2 is a "digit" to str.isdigit() but not to int(): it must still be a header error.
        ("Helicone-Fallback-OnCodes", "429,\u00b2", "status codes"),
        ("Helicone-Fallbacks", "gpt-4o-mini", "JSON list"),
        ("Helicone-Fallbacks", '{"model": "gpt-4o-mini"}', "JSON list"),
        ("Helicone-Fallbacks", '["gpt-4o-mini"]', "JSON list"),
        ("Helicone-Cache-Bucket-Max-Size", "0", "whole number from 1 to 100"),
        ("Helicone-Session-Path", "parent/child", "/parent/child"),
        ("Helicone-Auth", "gk-secret", "Bearer <key>"),
        ("Helicone-Auth", "Basic Z2s6c2VjcmV0", "Bearer <key>"),
        ("Helicone-Auth", "Bearer ", "Bearer <key>"),
        ("Helicone-Property-", "x", "Helicone-Property-<Name>"),
    ],
)
def test_malformed_header_raises_header_error_naming_it_and_the_accepted_form(name, value, accepted):
    with pytest.raises(HeaderError) as error:
        parse_helicone_headers([(name, value)])

    assert error.value.header == name
    assert accepted in error.value.message
    # SDKs show only the message: it names the header itself, and the value unless the value is a key.
    assert error.value.message.startswith(f"{name}: ")
    assert (repr(value) in error.value.message) == (name not in ("Helicone-Auth", "Helicone-Property-"))


def test_malformed_header_message_reads_as_documented():
    with pytest.raises(HeaderError) as caught:
        parse_helicone_headers([("Helicone-Cache-Enabled", "maybe")])

    assert caught.value.message == "Helicone-Cache-Enabled: expected true or false, got 'maybe'"


def test_a_long_malformed_value_is_quoted_cut():
    with pytest.raises(HeaderError) as caught:
        parse_helicone_headers([("Helicone-Retry-Num", "9" * 5000)])

    assert len(caught.value.message) < 200 and "5,000 characters" in caught.value.message


def test_an_auth_header_sent_twice_is_malformed_without_quoting_its_keys():
    with pytest.raises(HeaderError) as caught:
        parse_helicone_headers([("Helicone-Auth", "Bearer key-one"), ("helicone-auth", "Bearer key-two")])

    assert "twice" in caught.value.message and "key-" not in caught.value.message


def test_unknown_helicone_headers_are_named_once_each_as_sent():
    fields = [("Helicone-Cache-Enabeld", "true"), ("helicone-cache-enabeld", "true"), ("Helicone-User-Id", "a"),
              ("Helicone-Property-Anything", "x"), ("Helicone-Posthog-Key", "k"), ("Authorization", "Bearer k")]

    assert unknown_helicone_headers(fields) == ["Helicone-Cache-Enabeld", "Helicone-Posthog-Key"]


@pytest.mark.parametrize(
    "policy",
    [
        "",
        "lots",
        "1000",  # no window
        "0;w=60",  # quota below 1
        "10;w=0",
        "10;w=sixty",
        "10;window=60",
        "10;w=60;u=dollars",
        "10;w=60;x=1",
        "10;w=\u00b2",  # str.isdigit() says yes, int() says no
    ],
)
def test_malformed_ratelimit_policy_raises_header_error_with_the_accepted_form(policy):
    with pytest.raises(HeaderError) as error:
        parse_helicone_headers([("Helicone-RateLimit-Policy", policy)])

    assert error.value.header == "Helicone-RateLimit-Policy"
    assert "[quota];w=[window seconds]" in error.value.message


def test_one_header_sent_twice_in_two_cases_with_different_values_is_malformed():
    with pytest.raises(HeaderError) as caught:
        parse_helicone_headers([("Helicone-Property-Dup", "a"), ("helicone-property-dup", "b")])

    assert caught.value.header.lower() == "helicone-property-dup"
    assert "twice" in caught.value.message


def test_one_header_sent_twice_with_the_same_value_is_accepted():
    options = parse_helicone_headers([("Helicone-User-Id", "alice"), ("helicone-user-id", "alice")])

    assert options.user_id == "alice"


def test_every_header_the_parser_reads_is_known_and_no_other():
    """A header the parser reads but KNOWN_HEADERS lacks would be noted on rows as ignored while it is used."""
    read = set(re.findall(r'"(helicone-[a-z-]+)"', inspect.getsource(headers.parse_helicone_headers)))
    assert read - {"helicone-property-"} == set(headers.KNOWN_HEADERS)
