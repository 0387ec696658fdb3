"""What alert and budget rules measure over the log: each rule's metric per scope value in its window (the alert
engine, `llmtap alerts list`, `llmtap budgets` and the dashboard), what the gateway's budget counters start from
after a restart, and the `alerts` table's history.

A rule's facts about a call (its user, key, model, provider, properties) are read from the same columns here as the
gateway reads from a call in flight (`rules.CallFacts`): the model is the one the caller asked for, the key is the
gateway key's owner, else the fingerprint of the provider key used.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..alerts.rules import BUDGET_METRICS, PROPERTY, AlertRule
from .rows import Rows, run

FACTS = {
    "user": "user_id",
    "key": "coalesce(key_owner, key_hash)",
    "model": "coalesce(model_requested, model)",
    "provider": "provider",
}
# Calls llmtap refused before they could count towards a rate-limit policy or a budget (Intake, ProxyAccess,
# ExposedProxyGuard, ShutdownGate, Router, RateLimiter, Budgets write these error types; replies.py). Every other
# call was let through, whatever became of it.
REFUSED = ("^llmtap_(rate_limited|budget_exceeded|invalid_header|invalid_body|unauthorized|proxy_auth_required|"
           "request_too_large|headers_too_large|host_not_allowed|unknown_endpoint|unroutable_model|"
           "missing_provider_key|shutting_down|duplicate_request_id|unsupported_encoding):")
ADMITTED = f"(error IS NULL OR NOT regexp_matches(error, '{REFUSED}'))"
METRIC_SQL = {
    "spend_usd": f"coalesce(sum(cost_usd) FILTER (WHERE {ADMITTED}), 0)",  # an exact DECIMAL
    "requests": f"count(*) FILTER (WHERE {ADMITTED})::DOUBLE",
    "error_rate": "round(100 * count(*) FILTER (WHERE status IS NULL OR status >= 400) / nullif(count(*), 0), 2)",
    "rate_limited": "count(*) FILTER (WHERE rate_limited)::DOUBLE",
    "p95_latency_ms": "quantile_cont(latency_ms, 0.95)",
}
JUDGED = ("error_rate", "p95_latency_ms")  # too few calls in a scope value: no value (NULL), never judged
# A call met a provider's 429: on any try (retries included), as the `throttling` view counts them.
RATE_LIMITED = ("(status = 429 AND attempts > 0 AND attempt_log IS NULL) "
                "OR coalesce(list_bool_or(list_transform(attempt_log, lambda t: t.status = 429)), false)")


def spend_sql(unpriced_usd: float) -> str:
    """The USD a budget or cents policy counts for its calls: their priced cost, and `unpriced_usd` for each answered
    call without a price, about what the gateway keeps of such a call's reservation live (ratelimit.py): a restart
    must not turn what it held into nothing."""
    unpriced = float(unpriced_usd)
    return f"sum(CASE WHEN cost_usd IS NULL AND status BETWEEN 100 AND 399 THEN {unpriced!r} ELSE cost_usd END)"


def fact_sql(field: str) -> tuple[str, list[Any]]:
    """The SQL of one of a call's facts (`user`, `key`, `model`, `provider`, `property:<name>`) and its parameters."""
    if field.startswith(PROPERTY):
        return "properties[?]", [field[len(PROPERTY):]]
    return FACTS[field], []


def rule_calls(rule: AlertRule, since: datetime, until: datetime | None = None) -> tuple[str, list[Any]]:
    """`calls`: the calls `rule.where` selects in [since, until), each with its `scope_value` (NULL for scope
    `all`) and whether it met a provider's 429, as a CTE the rule's queries start from."""
    scope_sql, params = ("NULL::VARCHAR", []) if rule.scope == "all" else fact_sql(rule.scope)
    conditions: list[str] = ["created_at >= ?"]
    where_params: list[Any] = [since]
    if until is not None:
        conditions.append("created_at < ?")
        where_params.append(until)
    for field, values in rule.where:
        sql, sql_params = fact_sql(field)
        conditions.append(f"{sql} IN (SELECT unnest(?::VARCHAR[]))")
        where_params += [*sql_params, list(values)]
    return (f"""calls AS (
            SELECT *, {scope_sql} AS scope_value, {RATE_LIMITED} AS rate_limited
            FROM requests WHERE {' AND '.join(conditions)})""", params + where_params)


def per_value(rule: AlertRule, now: datetime) -> tuple[str, list[Any]]:
    """The CTEs `calls` (`rule_calls`) and `per_value`: the rule's metric in the window that holds `now`, one row per
    scope value (scope `all`: always its one row, 0 when nothing was called; others: the values seen, NULL for the
    calls without one): `scope_value`, `value` (USD as an exact DECIMAL, requests, %, 429s, ms; NULL for error_rate
    and p95 when fewer calls than `min_requests`), `requests` (every call), `unpriced` (calls let through without a
    price: not in a spend figure). A rolling window holds every call up to now (one written after `now` too); a
    calendar one ends with its period. Every view of a rule's figures starts here, so they agree."""
    start, end = rule.window.span(now)
    calls, params = rule_calls(rule, start, None if rule.window.rolling else end)
    metric = METRIC_SQL[rule.metric]
    value = f"CASE WHEN count(*) >= {int(rule.min_requests)} THEN {metric} END" if rule.metric in JUDGED else metric
    scoped = rule.scope != "all"
    return f"""{calls}, per_value AS (
            SELECT {'scope_value' if scoped else 'NULL::VARCHAR AS scope_value'}, {value} AS value,
                   count(*) AS requests, count(*) FILTER (WHERE {ADMITTED} AND cost_usd IS NULL) AS unpriced
            FROM calls {'GROUP BY scope_value' if scoped else ''})""", params


def rule_values(log: Path, rule: AlertRule, now: datetime) -> Rows:
    """`per_value`'s rows as the alert engine judges them: `scope_value`, `value` (a DOUBLE, spend too), `requests`,
    `window_start` and `window_end`; highest value first."""
    start, end = rule.window.span(now)
    ctes, params = per_value(rule, now)
    return run(log, f"""
        WITH {ctes}
        SELECT scope_value, value::DOUBLE AS value, requests, ?::TIMESTAMPTZ AS window_start,
               ?::TIMESTAMPTZ AS window_end
        FROM per_value ORDER BY value DESC NULLS LAST, scope_value NULLS LAST""", params + [start, end])


def rule_usage(log: Path, rule: AlertRule, now: datetime, bucket_s: int, unpriced_usd: float = 0.0) -> Rows:
    """What a budget rule's calls already used in the window that holds `now`, for the gateway's counters to start
    from: per scope value and `bucket_s`-second bucket, `amount` (USD for spend_usd, calls for requests, of the
    calls llmtap let through) and `last_at`, the bucket's latest call (a rolling window forgets the bucket's amount
    when that call leaves it: never before any of its calls would have). An answered call without a price counts
    `unpriced_usd`, what the gateway holds for it live (`spend_sql`). Oldest first."""
    start, end = rule.window.span(now)
    calls, params = rule_calls(rule, start, None if rule.window.rolling else end)  # as `per_value` counts them
    amount = spend_sql(unpriced_usd) if rule.metric == "spend_usd" else "count(*)"
    return run(log, f"""
        WITH {calls}
        SELECT scope_value, epoch_us(created_at) // {int(bucket_s) * 1_000_000} AS bucket,
               {amount}::DOUBLE AS amount, max(created_at) AS last_at
        FROM calls WHERE {ADMITTED}
        GROUP BY ALL HAVING amount > 0 ORDER BY last_at""", params)


# The `alerts` table as m008 made it, for a log an older llmtap wrote (no gateway has migrated it yet): no notices.
NO_ALERTS = """(SELECT NULL::VARCHAR AS alert_id, NULL::TIMESTAMPTZ AS created_at, NULL::VARCHAR AS rule,
    NULL::VARCHAR AS kind, NULL::VARCHAR AS metric, NULL::VARCHAR AS time_window, NULL::TIMESTAMPTZ AS period_start,
    NULL::VARCHAR AS scope, NULL::VARCHAR AS scope_value, NULL::DOUBLE AS metric_value, NULL::DOUBLE AS threshold,
    NULL::VARCHAR AS summary, NULL::VARCHAR AS channel, NULL::VARCHAR AS target, NULL::VARCHAR AS outcome,
    NULL::VARCHAR AS detail, NULL::INTEGER AS attempts WHERE false)"""


def alerts_table(log: Path) -> str:
    """What the alert queries read: the `alerts` table, or no notices in a log written before it existed."""
    found = run(log, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'alerts' AND schema_name = 'main'")
    return "alerts" if found.rows[0][0] else NO_ALERTS


def alert_history(log: Path, since: datetime | None = None, rule: str | None = None, limit: int = 100) -> Rows:
    """The `alerts` table's rows, newest first: every notice sent or failed, one row per channel (none in a log
    without the table)."""
    conditions: list[str] = ["true"]
    params: list[Any] = []
    if since is not None:
        conditions.append("created_at >= ?")
        params.append(since)
    if rule is not None:
        conditions.append("rule = ?")
        params.append(rule)
    return run(log, f"""
        SELECT created_at, rule, kind, scope_value, metric, time_window, metric_value, threshold, channel, target,
               outcome, detail, attempts, alert_id, period_start, summary
        FROM {alerts_table(log)} WHERE {' AND '.join(conditions)}
        ORDER BY created_at DESC LIMIT {int(limit)}""", params)


def last_notices(log: Path, stopped_detail: str = "") -> Rows:
    """Per rule and scope value, its latest notice (`firing` or `resolved`, tests left out) that was not cut short
    (every channel failed with a detail starting `stopped_detail`: the gateway stopped before it could try): `rule`,
    `scope_value`, `kind`, `period_start`, `created_at`, and whether any channel took it (`delivered`). What the
    alert engine starts from after a restart."""
    return run(log, f"""
        WITH notices AS (
            SELECT alert_id, rule, scope_value, kind, period_start, min(created_at) AS created_at,
                   bool_or(outcome = 'sent') AS delivered
            FROM {alerts_table(log)} WHERE kind <> 'test' GROUP BY ALL
            HAVING ? = '' OR NOT bool_and(outcome = 'failed' AND starts_with(coalesce(detail, ''), ?))
        )
        SELECT rule, scope_value, kind, period_start, created_at, delivered FROM notices
        QUALIFY row_number() OVER (PARTITION BY rule, scope_value ORDER BY created_at DESC) = 1
        ORDER BY rule, scope_value NULLS FIRST""", [stopped_detail, stopped_detail])


# ---------------------------------------------------------------------------------------------- the views' questions
# `llmtap budgets`, `llmtap alerts list` and the dashboard's Alerts page ask these; they start from `per_value` as the
# engine's `rule_values` does, with spend kept as an exact DECIMAL sum (money in JSON is exact everywhere).

BUDGET_COLUMNS = ["rule", "metric", "action", "scope", "scope_value", "used", "threshold", "left", "used_pct",
                  "unpriced", "requests", "window", "window_start", "window_end", "resets_at", "over", "blocking"]
RULE_COLUMNS = ["rule", "metric", "window", "period", "scope", "where", "threshold", "value", "value_scope",
                "scope_values", "over", "state", "action", "channels", "window_start", "window_end",
                "last_fired_at", "last_fired_scope", "last_fired_delivered", "resolved_at"]


def _over_sql(rule: AlertRule, value: str) -> str:
    """Whether `value` passes the rule's threshold, as the alert engine judges it: a notify rule's metric must exceed
    it; a budget (`block`) is spent when it reaches it (the next call would pass it). NULL never passes."""
    return f"coalesce({value} {'>=' if rule.blocks else '>'} {float(rule.threshold)!r}, false)"


def _threshold_decimal(rule: AlertRule) -> str:
    """The threshold as exact decimal text (`0.05`, not 0.05000000000000000277), for DECIMAL arithmetic."""
    return str(Decimal(repr(float(rule.threshold))))


def budgets(log: Path, rules: Sequence[AlertRule], now: datetime) -> Rows:
    """Spend and request rules (both actions), per scope value, in the window that holds `now`, in `rules`' order
    (the most used first within a rule): `used` (USD, an exact DECIMAL, or calls; of the calls llmtap let through),
    `threshold`, `left` (never below 0), `used_pct` (NULL for a threshold of 0), `unpriced` (calls in `used`'s
    window whose price is unknown: not in a spend figure), `requests`, `window` (`last 1d`, `2026-11`),
    `window_start`/`window_end`, `resets_at` (a calendar window's end; NULL for a rolling one), `over` (past the
    threshold, as the engine judges: `_over_sql`) and `blocking` (a block rule whose budget is spent: its next call
    is refused). Scope `all` always has its one row; others only the scope values seen."""
    types: list[str] = []
    rows: list[tuple] = []
    for rule in rules:
        if rule.metric not in BUDGET_METRICS:
            continue
        start, end = rule.window.span(now)
        ctes, params = per_value(rule, now)
        answer = run(log, f"""
            WITH {ctes}, usage AS (
                SELECT scope_value, value::DECIMAL(38, 10) AS used,
                       {'unpriced' if rule.metric == 'spend_usd' else '0'} AS unpriced, requests FROM per_value)
            SELECT ? AS rule, ? AS metric, ? AS action, ? AS scope, scope_value, used,
                   ?::DECIMAL(38, 10) AS threshold, greatest(threshold - used, 0)::DECIMAL(38, 10) AS left,
                   CASE WHEN threshold > 0 THEN round(100 * used::DOUBLE / threshold::DOUBLE, 1) END AS used_pct,
                   unpriced, requests, ? AS window, ?::TIMESTAMPTZ AS window_start, ?::TIMESTAMPTZ AS window_end,
                   ?::TIMESTAMPTZ AS resets_at, {_over_sql(rule, 'used')} AS over,
                   ? AND {_over_sql(rule, 'used')} AS blocking
            FROM usage ORDER BY used DESC, scope_value NULLS LAST""",
            params + [rule.name, rule.metric, rule.action, rule.scope, _threshold_decimal(rule),
                      rule.window.label(now), start, end, None if rule.window.rolling else end, rule.blocks])
        types = answer.types
        rows += answer.rows
    return Rows(BUDGET_COLUMNS, types or ["VARCHAR"] * len(BUDGET_COLUMNS), rows)


def rule_state(log: Path, rule: AlertRule, now: datetime) -> Rows:
    """One row: the rule's metric in the window that holds `now`. `value`: scope `all`'s value, else the highest
    of any scope value (`value_scope` names it); `scope_values` seen (scope `all`: 1), how many are `over` the
    threshold (as the engine judges: see `_over_sql`), `state` (`over`, `ok`, or `n/a` when no scope value had the
    `min_requests` to be judged), `window_start`, `window_end`. Spend is an exact DECIMAL; counts are 0
    when nothing was called."""
    start, end = rule.window.span(now)
    ctes, params = per_value(rule, now)
    top = "max(value)" if rule.metric in JUDGED else "coalesce(max(value), 0)"
    return run(log, f"""
        WITH {ctes}
        SELECT {top} AS value, arg_max(scope_value, value) FILTER (WHERE value IS NOT NULL) AS value_scope,
               count(*) AS scope_values,
               count(*) FILTER (WHERE {_over_sql(rule, 'value')}) AS over,
               CASE WHEN count(*) FILTER (WHERE {_over_sql(rule, 'value')}) > 0 THEN 'over'
                    WHEN {top} IS NULL THEN 'n/a' ELSE 'ok' END AS state,
               ?::TIMESTAMPTZ AS window_start, ?::TIMESTAMPTZ AS window_end
        FROM per_value""", params + [start, end])


def last_fired(log: Path) -> Rows:
    """Per rule, its latest `firing` notice: `scope_value`, `fired_at`, whether any channel took it (`delivered`),
    and `resolved_at`, the first `resolved` notice for the same scope value after it (NULL: not resolved)."""
    return run(log, f"""
        WITH notices AS (
            SELECT alert_id, rule, scope_value, kind, min(created_at) AS created_at,
                   bool_or(outcome = 'sent') AS delivered
            FROM {alerts_table(log)} WHERE kind <> 'test' GROUP BY ALL
        ), fired AS (
            SELECT rule, scope_value, created_at AS fired_at, delivered FROM notices WHERE kind = 'firing'
            QUALIFY row_number() OVER (PARTITION BY rule ORDER BY created_at DESC) = 1
        )
        SELECT fired.rule, fired.scope_value, fired.fired_at, fired.delivered,
               (SELECT min(created_at) FROM notices WHERE notices.rule = fired.rule AND notices.kind = 'resolved'
                  AND notices.scope_value IS NOT DISTINCT FROM fired.scope_value
                  AND notices.created_at > fired.fired_at) AS resolved_at
        FROM fired ORDER BY fired.rule""")


def rule_states(log: Path, rules: Sequence[AlertRule], now: datetime) -> Rows:
    """One row per rule, in `rules`' order: what it watches (`metric`, `window`, `period` (`last 1d`, `2026-11-27`),
    `scope`, `where` ({field: [values]}), `threshold`, `action`, `channels` (their kinds)), where it stands now
    (`rule_state`'s `value`, `value_scope`, `scope_values`, `over`, `state`, `window_start`, `window_end`) and when
    it last fired (`last_fired`'s: `last_fired_at`, `last_fired_scope`, `last_fired_delivered`, `resolved_at`)."""
    fired = {row["rule"]: row for row in last_fired(log).dicts()} if rules else {}
    rows = []
    for rule in rules:
        state = rule_state(log, rule, now).dicts()[0]
        last = fired.get(rule.name, {})
        rows.append((rule.name, rule.metric, rule.window.text, rule.window.label(now), rule.scope,
                     {field: list(values) for field, values in rule.where},
                     Decimal(_threshold_decimal(rule)) if rule.metric == "spend_usd" else rule.threshold,
                     state["value"], state["value_scope"], state["scope_values"], state["over"], state["state"],
                     rule.action, [channel.kind for channel in rule.channels], state["window_start"],
                     state["window_end"], last.get("fired_at"), last.get("scope_value"), last.get("delivered"),
                     last.get("resolved_at")))
    types = ["VARCHAR"] * 5 + ["MAP", "DOUBLE", "DOUBLE", "VARCHAR", "BIGINT", "BIGINT", "VARCHAR", "VARCHAR",
                               "VARCHAR[]", "TIMESTAMPTZ", "TIMESTAMPTZ", "TIMESTAMPTZ", "VARCHAR", "BOOLEAN",
                               "TIMESTAMPTZ"]
    return Rows(RULE_COLUMNS, types, rows)
