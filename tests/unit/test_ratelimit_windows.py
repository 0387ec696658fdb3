"""Sliding windows of rate-limit usage (counters.py), driven by a fake clock: exact edges, running sums, retry-after,
reservations, seeds.

No sleeps and no proxy: `SlidingWindows` takes its clock, so a test moves time by hand.
"""

from __future__ import annotations

import time

import pytest
from llmtap.counters import Quota, SlidingWindows
from llmtap.ratelimit import policy_quota
from llmtap.ratelimit_policy import parse_ratelimit_policy

from .conftest import FakeClock

KEY = ("header:k", "policy", "all", None)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1000.0)


def test_an_event_expires_exactly_at_the_window_edge(clock):
    policy = policy_quota(parse_ratelimit_policy("2;w=10"))
    windows = SlidingWindows(clock)
    windows.add(KEY, 10, 1)
    clock.now += 4
    windows.add(KEY, 10, 1)
    assert windows.standing(policy, KEY).over
    clock.now += 5.999  # the first event is 9.999 s old: still in
    standing = windows.standing(policy, KEY)
    assert standing.used == 2 and standing.over and standing.retry_after_s == pytest.approx(0.001)
    clock.now += 0.001  # exactly 10 s old: out
    standing = windows.standing(policy, KEY)
    assert standing.used == 1 and not standing.over and standing.retry_after_s == 0
    clock.now += 4  # both out
    assert windows.standing(policy, KEY).used == 0


def test_running_sum_stays_right_through_many_adds_and_expiries(clock):
    policy = policy_quota(parse_ratelimit_policy("1000000;w=60;u=cents"))
    windows = SlidingWindows(clock)
    added: list[tuple[float, float]] = []
    for i in range(20_000):
        amount = (i % 7) * 0.37 + 0.01
        windows.add(KEY, 60, amount)
        added.append((clock.now, amount))
        clock.now += 0.01
        if i % 997 == 0:
            expected = sum(a for at, a in added if at > clock.now - 60)
            assert windows.standing(policy, KEY).used == pytest.approx(expected, rel=1e-9)
    expected = sum(a for at, a in added if at > clock.now - 60)
    assert windows.standing(policy, KEY).used == pytest.approx(expected, rel=1e-9)
    clock.now += 60
    assert windows.standing(policy, KEY).used == 0.0  # emptied: no float residue


def test_a_check_does_not_walk_the_window(clock):
    policy = policy_quota(parse_ratelimit_policy("2000000;w=3600"))
    windows = SlidingWindows(clock)
    for _ in range(300_000):
        windows.add(KEY, 3600, 1, clock.now)
    started = time.perf_counter()
    for _ in range(1000):
        standing = windows.standing(policy, KEY)
    per_check_s = (time.perf_counter() - started) / 1000
    assert standing.used == 300_000
    assert per_check_s < 0.0005  # the old sum over the window took ~20 ms a check at this size


def test_retry_after_is_when_enough_usage_has_aged_out(clock):
    policy = policy_quota(parse_ratelimit_policy("3;w=60"))
    windows = SlidingWindows(clock)
    for step in (0, 10, 20):
        clock.now = 1000.0 + step
        windows.add(KEY, 60, 1)
    clock.now = 1030.0
    standing = windows.standing(policy, KEY)
    assert standing.over and standing.retry_after_s == pytest.approx(30)  # the first call leaves at 1060
    assert standing.used == 3


def test_cents_reservation_is_refused_when_it_would_pass_the_quota(clock):
    policy = policy_quota(parse_ratelimit_policy("5;w=60;u=cents"))
    windows = SlidingWindows(clock)
    assert not windows.standing(policy, KEY, need=16).over  # an empty window lets one call through
    first = windows.add(KEY, 60, 16)
    assert windows.standing(policy, KEY, need=0.5).over  # 16 reserved already
    windows.release(first)
    assert not windows.standing(policy, KEY, need=4).over and windows.standing(policy, KEY).used == 0
    windows.add(KEY, 60, 2)
    assert not windows.standing(policy, KEY, need=3).over  # 2 + 3 = 5: fits exactly
    assert windows.standing(policy, KEY, need=3.01).over


def test_releasing_an_expired_reservation_changes_nothing(clock):
    policy = policy_quota(parse_ratelimit_policy("5;w=10;u=cents"))
    windows = SlidingWindows(clock)
    old = windows.add(KEY, 10, 4)
    clock.now += 10
    windows.add(KEY, 10, 1)
    assert windows.standing(policy, KEY).used == 1
    windows.release(old)
    assert windows.standing(policy, KEY).used == 1


def test_request_and_cents_quotas_count_as_documented():
    requests, cents = parse_ratelimit_policy("2;w=1"), parse_ratelimit_policy("2;w=1;u=cents")
    assert [policy_quota(requests).is_over(used) for used in (0, 1, 2)] == [False, False, True]
    assert [policy_quota(cents).is_over(used, need=1) for used in (0, 0.5, 1, 1.5, 2)] == [False, False, False, True, True]
    assert not policy_quota(cents).is_over(0, need=100)  # one call always fits an empty window


def test_seeded_usage_counts_until_it_leaves_the_window(clock):
    quota = policy_quota(parse_ratelimit_policy("10;w=60;u=cents"))
    windows = SlidingWindows(clock)
    windows.seed(KEY, 60, 4, at=clock.now - 50)  # seeds in any order: a later one first
    windows.seed(KEY, 60, 6, at=clock.now - 59)
    standing = windows.standing(quota, KEY, need=1)
    assert standing.used == 10 and standing.over and standing.retry_after_s == pytest.approx(1)
    clock.now += 1  # the older seed leaves the window
    assert windows.standing(quota, KEY).used == 4


def test_coalesced_counts_share_an_event_and_leave_no_earlier_than_their_latest(clock):
    quota = Quota(1_000_000, window_s=100)
    windows = SlidingWindows(clock)
    for i in range(10_000):  # 10,000 calls over 10 s, one event per second at most
        clock.now = 1000.0 + i / 1000
        windows.add(KEY, 100, 1, coalesce_s=1)
    assert len(windows._windows[KEY].events) == 10
    assert windows.standing(quota, KEY).used == 10_000
    clock.now = 1000.0 + 100.5  # the first second's calls (latest at ~1000.999) are still counted
    assert windows.standing(quota, KEY).used == 10_000
    clock.now = 1000.0 + 101  # now they have left; later seconds' have not
    assert windows.standing(quota, KEY).used == 9_000
