"""The alert engine over a real DuckDB log built here, on a clock the test moves: one alert per rule, scope value
and window, a resolved notice when a metric drops back, a new calendar period firing afresh, and what fired before a
restart not sent again. (Delivery to real receivers is tested end to end in tests/test_alerts.py.)"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest
from llmtap.alerts.delivery import STOPPED
from llmtap.alerts.engine import AlertEngine
from llmtap.alerts.notice import Notice
from llmtap.alerts.rules import AlertRule, Webhook, parse_window
from llmtap.analytics import queries
from llmtap.migrations import MIGRATIONS, migrate

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)
HOOK = (Webhook("http://127.0.0.1:9/hook"),)


class Collected:
    """The engine's sink in these tests: the notices it submitted, in order."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []

    def submit(self, notice: Notice) -> None:
        self.notices.append(notice)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def rule(name: str, metric: str, window: str, threshold: float, **fields) -> AlertRule:
    return AlertRule(name=name, metric=metric, window=parse_window(window), threshold=threshold, channels=HOOK,
                     **fields)


@pytest.fixture
def log(tmp_path) -> Path:
    path = tmp_path / "llmtap.duckdb"
    with duckdb.connect(str(path)) as db:
        migrate(db)
    return path


def add_call(log: Path, at: datetime, cost_usd: str | None = "1", status: int = 200, user: str | None = None,
             **fields) -> None:
    row = {"request_id": str(uuid.uuid4()), "created_at": at, "way": "gateway", "provider": "openai",
           "model": "gpt-4o", "model_requested": "gpt-4o", "status": status, "latency_ms": 100.0,
           "cost_usd": Decimal(cost_usd) if cost_usd is not None else None, "user_id": user, **fields}
    with duckdb.connect(str(log)) as db:
        db.execute(f"INSERT INTO requests ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                   list(row.values()))


def record_sent(log: Path, notice: Notice) -> None:
    """What delivery records for a notice a channel took (one `alerts` row)."""
    with duckdb.connect(str(log)) as db:
        db.execute("""INSERT INTO alerts (alert_id, created_at, rule, kind, period_start, scope_value, outcome)
                      VALUES (?, ?, ?, ?, ?, ?, 'sent')""",
                   [notice.alert_id, notice.at, notice.rule.name, notice.kind, notice.period_start,
                    notice.scope_value])


def engine(log: Path, rules: list[AlertRule], clock: Clock) -> tuple[AlertEngine, Collected]:
    sink = Collected()
    return AlertEngine(log, rules, sink, interval_s=60, clock=clock), sink


def kinds(notices: list[Notice]) -> list[tuple[str, str, str | None]]:
    return [(n.rule.name, n.kind, n.scope_value) for n in notices]


def test_daily_spend_fires_once_when_it_passes_the_threshold_and_again_only_the_next_day(log):
    clock = Clock(T0)
    daily = rule("daily-spend", "spend_usd", "day", 50)
    alerts, sink = engine(log, [daily], clock)
    add_call(log, T0 - timedelta(hours=1), cost_usd="30")
    assert alerts.check() == []
    add_call(log, T0, cost_usd="25")
    clock.now = T0 + timedelta(minutes=1)
    [fired] = alerts.check()
    assert (fired.kind, fired.value, fired.scope_value) == ("firing", 55.0, None)
    assert fired.period_start == datetime(2026, 11, 27, tzinfo=UTC)
    assert "'daily-spend': spend over 2026-11-27 is $55.00, past the threshold of $50.00" in fired.summary()
    add_call(log, T0 + timedelta(minutes=2), cost_usd="100")
    clock.now = T0 + timedelta(minutes=3)
    assert alerts.check() == []  # still the same day: no second alert, and no "resolved" for spend
    clock.now = datetime(2026, 11, 28, 0, 5, tzinfo=UTC)
    assert alerts.check() == []  # a new day with nothing spent yet
    add_call(log, clock.now, cost_usd="51")
    [again] = alerts.check()
    assert again.kind == "firing" and again.period_start == datetime(2026, 11, 28, tzinfo=UTC)
    assert kinds(sink.notices) == [("daily-spend", "firing", None)] * 2


def test_a_per_user_rolling_error_rate_fires_for_that_user_resolves_when_errors_leave_the_window_and_can_fire_again(
        log):
    clock = Clock(T0)
    errors = rule("errors", "error_rate", "1h", 40, scope="user", min_requests=3)
    alerts, sink = engine(log, [errors], clock)
    for minute, status in ((0, 500), (1, 500), (2, 200)):
        add_call(log, T0 + timedelta(minutes=minute), status=status, user="bob")
    for minute in range(3):
        add_call(log, T0 + timedelta(minutes=minute), user="carol")
    add_call(log, T0, status=500, user="dave")  # 100% errors, but one call is too few to judge
    clock.now = T0 + timedelta(minutes=5)
    [fired] = alerts.check()
    assert (fired.kind, fired.scope_value, fired.value) == ("firing", "bob", 66.67)
    assert fired.who == " for user 'bob'"
    assert alerts.check() == []
    add_call(log, T0 + timedelta(minutes=30), user="bob")
    clock.now = T0 + timedelta(minutes=61, seconds=30)  # the two 500s have left the last hour
    [resolved] = alerts.check()
    assert (resolved.kind, resolved.scope_value) == ("resolved", "bob")
    assert "back to" in resolved.summary()
    for minute in (62, 63, 64):
        add_call(log, T0 + timedelta(minutes=minute), status=500, user="bob")
    clock.now = T0 + timedelta(minutes=65)
    [again] = alerts.check()
    assert (again.kind, again.scope_value) == ("firing", "bob")
    assert kinds(sink.notices) == [("errors", "firing", "bob"), ("errors", "resolved", "bob"),
                                   ("errors", "firing", "bob")]


def test_a_calendar_error_rate_resolves_once_and_does_not_fire_twice_in_one_day(log):
    clock = Clock(T0)
    errors = rule("errors-today", "error_rate", "day", 50)
    alerts, _ = engine(log, [errors], clock)
    add_call(log, T0, status=500)
    assert kinds(alerts.check()) == [("errors-today", "firing", None)]
    add_call(log, T0 + timedelta(minutes=1))
    add_call(log, T0 + timedelta(minutes=2))
    clock.now = T0 + timedelta(minutes=3)
    assert kinds(alerts.check()) == [("errors-today", "resolved", None)]
    add_call(log, T0 + timedelta(minutes=4), status=500)
    add_call(log, T0 + timedelta(minutes=5), status=500)
    clock.now = T0 + timedelta(minutes=6)
    assert alerts.check() == []  # over again the same day: it has had its alert for today


def test_a_rolling_rule_hovering_at_its_threshold_fires_once_per_window_not_at_every_check(log):
    clock = Clock(T0)
    hourly = rule("hourly-requests", "requests", "1h", 2)
    alerts, sink = engine(log, [hourly], clock)
    for minute in (0, 1, 2):
        add_call(log, T0 + timedelta(minutes=minute))
    clock.now = T0 + timedelta(minutes=3)
    assert kinds(alerts.check()) == [("hourly-requests", "firing", None)]
    clock.now = T0 + timedelta(minutes=60, seconds=30)  # the first call left the hour: 2, not over 2
    assert kinds(alerts.check()) == [("hourly-requests", "resolved", None)]
    for notice in sink.notices:
        record_sent(log, notice)
    restarted, _ = engine(log, [hourly], clock)  # a restart remembers this window's alert, resolved or not
    for minute in (60, 61):  # a call in as one leaves: over, back, over... at every check, within the hour
        add_call(log, T0 + timedelta(minutes=minute, seconds=40))
        clock.now = T0 + timedelta(minutes=minute, seconds=50)
        assert alerts.check() == [] and restarted.check() == []  # over: 3 calls
        clock.now = T0 + timedelta(minutes=minute + 1, seconds=30)
        assert alerts.check() == [] and restarted.check() == []  # back to 2
    add_call(log, T0 + timedelta(minutes=63))
    clock.now = T0 + timedelta(minutes=63, seconds=30)  # an hour since it fired, and over: a new alert
    assert kinds(alerts.check()) == [("hourly-requests", "firing", None)]
    assert kinds(restarted.check()) == [("hourly-requests", "firing", None)]


def test_what_fired_before_a_restart_is_not_sent_again_in_the_same_window(log):
    clock = Clock(T0)
    daily = rule("daily-spend", "spend_usd", "day", 5)
    rolling = rule("hourly-requests", "requests", "1h", 1, scope="user")
    add_call(log, T0, cost_usd="6", user="bob")
    add_call(log, T0, cost_usd="0", user="bob")
    first, _ = engine(log, [daily, rolling], clock)
    notices = first.check()
    assert sorted(kinds(notices)) == [("daily-spend", "firing", None), ("hourly-requests", "firing", "bob")]
    for notice in notices:
        record_sent(log, notice)
    clock.now = T0 + timedelta(minutes=10)
    restarted, sink = engine(log, [daily, rolling], clock)
    assert restarted.check() == []
    clock.now = T0 + timedelta(minutes=70)  # bob's calls have left the hour; the day's spend stands
    [resolved] = restarted.check()
    assert kinds([resolved]) == [("hourly-requests", "resolved", "bob")]
    assert "requests for user 'bob' over last 1h is back to 0 requests, within 1 requests" in resolved.summary()


def test_an_alert_the_stop_cut_short_is_sent_after_the_restart_once(log):
    clock = Clock(T0)
    daily = rule("daily-spend", "spend_usd", "day", 5)
    add_call(log, T0, cost_usd="6")
    first, _ = engine(log, [daily], clock)
    [fired] = first.check()
    with duckdb.connect(str(log)) as db:  # what Delivery.close records for a notice still queued at shutdown
        db.execute("""INSERT INTO alerts (alert_id, created_at, rule, kind, period_start, scope_value, outcome, detail)
                      VALUES (?, ?, ?, 'firing', ?, NULL, 'failed', ?)""",
                   [fired.alert_id, T0, "daily-spend", fired.period_start, STOPPED])
    clock.now = T0 + timedelta(minutes=1)
    restarted, _ = engine(log, [daily], clock)
    [again] = restarted.check()
    assert (again.kind, again.period_start) == ("firing", fired.period_start)
    record_sent(log, again)
    clock.now = T0 + timedelta(minutes=2)
    assert engine(log, [daily], clock)[0].check() == []  # delivered this time: not again after another restart


def test_a_budget_rule_alerts_when_the_budget_is_reached_not_only_passed(log):
    clock = Clock(T0)
    budget = rule("monthly", "requests", "month", 2, action="block")
    alerts, _ = engine(log, [budget], clock)
    add_call(log, T0)
    assert alerts.check() == []
    add_call(log, T0)
    [fired] = alerts.check()
    assert fired.value == 2.0 and "Calls that would pass it are refused (429)." in fired.summary()


def test_rules_without_channels_are_not_checked(log):
    silent = AlertRule(name="quiet", metric="requests", window=parse_window("1d"), threshold=0, action="block")
    alerts, _ = engine(log, [silent], Clock(T0))
    add_call(log, T0)
    assert alerts.rules == [] and alerts.check() == []


def test_a_log_an_older_llmtap_wrote_has_no_notices_yet_and_is_measured_all_the_same(tmp_path):
    old = tmp_path / "old.duckdb"
    with duckdb.connect(str(old)) as db:  # the schema as llmtap left it before the alerts table (m008)
        db.execute("CREATE TABLE llmtap_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
        for fn in MIGRATIONS:
            if fn.__name__ < "m008":
                fn(db)
    with duckdb.connect(str(old)) as db:
        db.execute("INSERT INTO requests (request_id, created_at, way, status, cost_usd) VALUES ('a', ?, 'gateway', "
                   "200, 9)", [T0])
    assert len(queries.alert_history(old)) == 0 and len(queries.last_notices(old)) == 0
    assert len(queries.last_fired(old)) == 0
    alerts, _ = engine(old, [rule("daily-spend", "spend_usd", "day", 5)], Clock(T0))
    assert kinds(alerts.check()) == [("daily-spend", "firing", None)]
