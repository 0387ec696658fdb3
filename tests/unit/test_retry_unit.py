"""How long llmtap waits before each retry: Helicone's exponential backoff with ±10% jitter, capped by the maximum,
or what the provider asked for. Pure functions: no call, no sleep."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from llmtap import retry
from llmtap.options import RetryOptions
from llmtap.retry import is_retryable, provider_wait_s, wait_s

OPTIONS = RetryOptions(enabled=True, max_retries=5, factor=2.0, min_timeout_ms=1000, max_timeout_ms=10_000)


@pytest.mark.parametrize("jitter, expected_s", [("low", [0.9, 1.8, 3.6, 7.2, 10.0]),
                                                ("high", [1.1, 2.2, 4.4, 8.8, 10.0])])
def test_backoff_is_min_times_factor_to_the_index_with_jitter_and_capped(monkeypatch, jitter, expected_s):
    monkeypatch.setattr(retry.random, "uniform", lambda low, high: low if jitter == "low" else high)
    assert [wait_s(OPTIONS, i) for i in range(5)] == pytest.approx(expected_s)


def test_jitter_spreads_waits_within_ten_percent():
    random.seed(9)
    waits = [wait_s(OPTIONS, 1) for _ in range(2000)]  # 2 s nominal
    assert 1.8 <= min(waits) < 1.82 and 2.18 < max(waits) <= 2.2
    assert len({round(w, 3) for w in waits}) > 300  # spread, not one value


def test_factor_and_minimum_come_from_the_options():
    options = RetryOptions(enabled=True, factor=3.0, min_timeout_ms=200, max_timeout_ms=600_000)
    random.seed(1)
    for index, nominal_s in enumerate([0.2, 0.6, 1.8, 5.4]):
        assert nominal_s * 0.9 <= wait_s(options, index) <= nominal_s * 1.1


def test_the_provider_word_wins_but_never_past_the_maximum():
    assert wait_s(OPTIONS, 0, retry_after="3") == 3.0
    assert wait_s(OPTIONS, 4, retry_after_ms="250") == 0.25  # even where the backoff would be far longer
    assert wait_s(OPTIONS, 0, retry_after="120") == 10.0
    assert wait_s(OPTIONS, 0, retry_after="7", retry_after_ms="1500") == 1.5  # the finer one first


def test_provider_wait_reads_seconds_milliseconds_and_http_dates():
    assert provider_wait_s("2.5", None) == 2.5
    assert provider_wait_s(None, "40") == 0.04
    assert provider_wait_s("-3", None) == 0.0
    in_30_s = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= provider_wait_s(in_30_s, None) <= 30
    assert provider_wait_s("soon", None) is None and provider_wait_s(None, "soon") is None
    assert provider_wait_s(None, None) is None and provider_wait_s("", "") is None


def test_what_is_retried():
    assert [is_retryable(s) for s in (None, 429, 500, 502, 503, 599)] == [True] * 6
    assert [is_retryable(s) for s in (200, 400, 401, 404, 409, 422)] == [False] * 6
