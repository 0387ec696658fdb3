"""What alert and budget rules measure over the log: each rule's metric per scope value in its window (the alert
engine, `llmtap alerts list`, `llmtap budgets` and the dashboard), what the gateway's budget counters start from
after a restart, and the `alerts` table's history.

A rule's facts about a call (its user, key, model, provider, properties) are read from the same columns here as the
gateway reads from a call in flight (`rules.CallFacts`): the model is the one the caller asked for, the key is the
gateway key's owner, else the fingerprint of the provider key used.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ..alerts.rules import PROPERTY, AlertRule
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
    "spend_usd": f"coalesce(sum(cost_usd) FILTER (WHERE {ADMITTED}), 0)::DOUBLE",
    "requests": f"count(*) FILTER (WHERE {ADMITTED})::DOUBLE",
    "error_rate": "round(100 * count(*) FILTER (WHERE status IS NULL OR status >= 400) / nullif(count(*), 0), 2)",
    "rate_limited": "count(*) FILTER (WHERE rate_limited)::DOUBLE",
    "p95_latency_ms": "quantile_cont(latency_ms, 0.95)",
}
# A call met a provider's 429: on any try (retries included), as the `throttling` view counts them.
RATE_LIMITED = ("(status = 429 AND attempts > 0 AND attempt_log IS NULL) "
                "OR coalesce(list_bool_or(list_transform(attempt_log, lambda t: t.status = 429)), false)")


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


def rule_values(log: Path, rule: AlertRule, now: datetime) -> Rows:
    """The rule's metric in the window that holds `now`, per scope value: `scope_value` (NULL for scope `all`, or
    the calls without a value), `value` (in the metric's unit: USD, requests, %, 429s, ms; NULL for error_rate and
    p95 when fewer calls than `min_requests`), `requests` (every call in the scope value), `window_start` and
    `window_end`. Scope `all` always has its one row (0 when nothing was called); others only the values seen.
    Highest value first."""
    start, end = rule.window.span(now)
    calls, params = rule_calls(rule, start, None if rule.window.rolling else end)  # a rolling window holds `now`
    judged = rule.metric in ("error_rate", "p95_latency_ms")
    value = f"CASE WHEN count(*) >= {int(rule.min_requests)} THEN {METRIC_SQL[rule.metric]} END" if judged \
        else METRIC_SQL[rule.metric]
    grouped = "" if rule.scope == "all" else "GROUP BY scope_value"
    return run(log, f"""
        WITH {calls}
        SELECT {'NULL::VARCHAR' if rule.scope == 'all' else 'scope_value'} AS scope_value, {value} AS value,
               count(*) AS requests, ?::TIMESTAMPTZ AS window_start, ?::TIMESTAMPTZ AS window_end
        FROM calls {grouped}
        ORDER BY value DESC NULLS LAST, scope_value NULLS LAST""", params + [start, end])


def rule_usage(log: Path, rule: AlertRule, now: datetime, bucket_s: int) -> Rows:
    """What a budget rule's calls already used in the window that holds `now`, for the gateway's counters to start
    from: per scope value and `bucket_s`-second bucket, `amount` (USD for spend_usd, calls for requests, of the
    calls llmtap let through) and `last_at`, the bucket's latest call (a rolling window forgets the bucket's amount
    when that call leaves it: never before any of its calls would have). Oldest first."""
    start, end = rule.window.span(now)
    calls, params = rule_calls(rule, start, min(end, now))
    amount = "sum(cost_usd)" if rule.metric == "spend_usd" else "count(*)"
    return run(log, f"""
        WITH {calls}
        SELECT scope_value, epoch_us(created_at) // {int(bucket_s) * 1_000_000} AS bucket,
               {amount}::DOUBLE AS amount, max(created_at) AS last_at
        FROM calls WHERE {ADMITTED}
        GROUP BY ALL HAVING amount > 0 ORDER BY last_at""", params)


def alert_history(log: Path, since: datetime | None = None, rule: str | None = None, limit: int = 100) -> Rows:
    """The `alerts` table's rows, newest first: every notice sent or failed, one row per channel."""
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
        FROM alerts WHERE {' AND '.join(conditions)}
        ORDER BY created_at DESC LIMIT {int(limit)}""", params)


def last_notices(log: Path) -> Rows:
    """Per rule and scope value, its latest notice (`firing` or `resolved`, tests left out): `rule`, `scope_value`,
    `kind`, `period_start`, `created_at`, and whether any channel took it (`delivered`). What the alert engine
    starts from after a restart, and what `alerts list` shows as last fired."""
    return run(log, """
        WITH notices AS (
            SELECT alert_id, rule, scope_value, kind, period_start, min(created_at) AS created_at,
                   bool_or(outcome = 'sent') AS delivered
            FROM alerts WHERE kind <> 'test' GROUP BY ALL
        )
        SELECT rule, scope_value, kind, period_start, created_at, delivered FROM notices
        QUALIFY row_number() OVER (PARTITION BY rule, scope_value ORDER BY created_at DESC) = 1
        ORDER BY rule, scope_value NULLS FIRST""")
