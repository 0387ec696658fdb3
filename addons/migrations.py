"""The schema of llmtap's DuckDB file, as numbered migrations.

Each migration is a plain function registered in order and recorded in `llmtap_migrations` when applied. A migration
never changes after it ships: a new column is a new migration.
"""

from __future__ import annotations

from collections.abc import Callable

import duckdb

MIGRATIONS: list[Callable[[duckdb.DuckDBPyConnection], None]] = []


def migration(fn: Callable[[duckdb.DuckDBPyConnection], None]) -> Callable[[duckdb.DuckDBPyConnection], None]:
    MIGRATIONS.append(fn)
    return fn


def migrate(db: duckdb.DuckDBPyConnection) -> list[str]:
    """Apply the migrations `db` has not had yet; returns their names."""
    db.execute("CREATE TABLE IF NOT EXISTS llmtap_migrations (name VARCHAR PRIMARY KEY, applied_at TIMESTAMPTZ)")
    done = {row[0] for row in db.execute("SELECT name FROM llmtap_migrations").fetchall()}
    applied = []
    for fn in MIGRATIONS:
        if fn.__name__ in done:
            continue
        db.execute("BEGIN TRANSACTION")
        fn(db)
        db.execute("INSERT INTO llmtap_migrations VALUES (?, now())", [fn.__name__])
        db.execute("COMMIT")
        applied.append(fn.__name__)
    return applied


@migration
def m001_requests(db: duckdb.DuckDBPyConnection) -> None:
    db.execute(
        """
        CREATE TABLE requests (
            request_id VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            way VARCHAR NOT NULL,
            provider VARCHAR,
            method VARCHAR,
            host VARCHAR,
            path VARCHAR,
            model VARCHAR,
            model_requested VARCHAR,
            status INTEGER,
            error VARCHAR,
            stream BOOLEAN,
            latency_ms DOUBLE,
            ttfb_ms DOUBLE,
            ttft_ms DOUBLE,
            input_tokens BIGINT,
            output_tokens BIGINT,
            cached_input_tokens BIGINT,
            cache_write_input_tokens BIGINT,
            reasoning_tokens BIGINT,
            total_tokens BIGINT,
            cost_usd DECIMAL(18, 10),
            price_source VARCHAR,
            price_error VARCHAR,
            cache_status VARCHAR,
            attempts INTEGER,
            user_id VARCHAR,
            session_id VARCHAR,
            session_path VARCHAR,
            session_name VARCHAR,
            prompt_id VARCHAR,
            properties MAP(VARCHAR, VARCHAR),
            key_hash VARCHAR,
            key_owner VARCHAR,
            ratelimit MAP(VARCHAR, VARCHAR),
            request_body JSON,
            response_body JSON
        )
        """
    )


@migration
def m002_cost_saved(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN cost_saved_usd DECIMAL(18, 10)")


@migration
def m003_attempts(db: duckdb.DuckDBPyConnection) -> None:
    db.execute("ALTER TABLE requests ADD COLUMN retries INTEGER")
    db.execute("ALTER TABLE requests ADD COLUMN fallback_from VARCHAR")
    db.execute(
        "ALTER TABLE requests ADD COLUMN attempt_log STRUCT(provider VARCHAR, model VARCHAR, status INTEGER, "
        "latency_ms DOUBLE, wait_ms DOUBLE, retry_after_s DOUBLE, error VARCHAR)[]"
    )


@migration
def m004_throttling_view(db: duckdb.DuckDBPyConnection) -> None:
    """Throttling events, one row each: a provider's 429 (every try, retried ones included) and answers that left
    less than 5% of the provider's request or token budget."""
    db.execute(
        """
        CREATE VIEW throttling AS
        WITH budgets AS (
            SELECT *,
                TRY_CAST(coalesce(ratelimit['x-ratelimit-remaining-requests'],
                                  ratelimit['anthropic-ratelimit-requests-remaining']) AS DOUBLE) AS requests_remaining,
                TRY_CAST(coalesce(ratelimit['x-ratelimit-limit-requests'],
                                  ratelimit['anthropic-ratelimit-requests-limit']) AS DOUBLE) AS requests_limit,
                TRY_CAST(coalesce(ratelimit['x-ratelimit-remaining-tokens'],
                                  ratelimit['anthropic-ratelimit-tokens-remaining']) AS DOUBLE) AS tokens_remaining,
                TRY_CAST(coalesce(ratelimit['x-ratelimit-limit-tokens'],
                                  ratelimit['anthropic-ratelimit-tokens-limit']) AS DOUBLE) AS tokens_limit
            FROM requests
        )
        SELECT r.created_at, r.request_id, a.provider, a.model, r.key_hash, 'rate_limited' AS event, a.status,
               a.retry_after_s, NULL::DOUBLE AS requests_remaining, NULL::DOUBLE AS requests_limit,
               NULL::DOUBLE AS tokens_remaining, NULL::DOUBLE AS tokens_limit
        FROM requests r, unnest(r.attempt_log) AS t(a)
        WHERE a.status = 429
        UNION ALL
        SELECT created_at, request_id, provider, coalesce(model, model_requested), key_hash, 'rate_limited', status,
               coalesce(TRY_CAST(ratelimit['retry-after-ms'] AS DOUBLE) / 1000, TRY_CAST(ratelimit['retry-after'] AS DOUBLE)),
               requests_remaining, requests_limit, tokens_remaining, tokens_limit
        FROM budgets
        WHERE status = 429 AND attempts > 0 AND attempt_log IS NULL
        UNION ALL
        SELECT created_at, request_id, provider, coalesce(model, model_requested), key_hash, 'near_limit', status,
               NULL, requests_remaining, requests_limit, tokens_remaining, tokens_limit
        FROM budgets
        WHERE requests_remaining < 0.05 * requests_limit OR tokens_remaining < 0.05 * tokens_limit
        """
    )


@migration
def m005_throttling_view_by_header_shape(db: duckdb.DuckDBPyConnection) -> None:
    """The `throttling` view of m004, reading a provider's budget from any rate-limit header named the way providers
    name them (`…ratelimit-remaining-requests` as OpenAI and Groq do, `…ratelimit-requests-remaining` as Anthropic
    does), so the schema names no provider: which headers are rate-limit headers is the wire formats' knowledge."""

    def budget(quantity: str, kind: str) -> str:
        pattern = f"ratelimit-({quantity}-{kind}|{kind}-{quantity})$"
        matching = f"list_filter(map_entries(ratelimit), lambda e: regexp_matches(e.key, '(^|-){pattern}'))"
        return f"TRY_CAST({matching}[1].value AS DOUBLE)"

    db.execute(
        f"""
        CREATE OR REPLACE VIEW throttling AS
        WITH budgets AS (
            SELECT *,
                {budget("remaining", "requests")} AS requests_remaining,
                {budget("limit", "requests")} AS requests_limit,
                {budget("remaining", "tokens")} AS tokens_remaining,
                {budget("limit", "tokens")} AS tokens_limit
            FROM requests
        )
        SELECT r.created_at, r.request_id, a.provider, a.model, r.key_hash, 'rate_limited' AS event, a.status,
               a.retry_after_s, NULL::DOUBLE AS requests_remaining, NULL::DOUBLE AS requests_limit,
               NULL::DOUBLE AS tokens_remaining, NULL::DOUBLE AS tokens_limit
        FROM requests r, unnest(r.attempt_log) AS t(a)
        WHERE a.status = 429
        UNION ALL
        SELECT created_at, request_id, provider, coalesce(model, model_requested), key_hash, 'rate_limited', status,
               coalesce(TRY_CAST(ratelimit['retry-after-ms'] AS DOUBLE) / 1000,
                        TRY_CAST(ratelimit['retry-after'] AS DOUBLE)),
               requests_remaining, requests_limit, tokens_remaining, tokens_limit
        FROM budgets
        WHERE status = 429 AND attempts > 0 AND attempt_log IS NULL
        UNION ALL
        SELECT created_at, request_id, provider, coalesce(model, model_requested), key_hash, 'near_limit', status,
               NULL, requests_remaining, requests_limit, tokens_remaining, tokens_limit
        FROM budgets
        WHERE requests_remaining < 0.05 * requests_limit OR tokens_remaining < 0.05 * tokens_limit
        """
    )


@migration
def m006_upstream_and_notes(db: duckdb.DuckDBPyConnection) -> None:
    """`host` stays the host the client sent the call to; `upstream` is where it really went (scheme://host[:port]
    of the endpoint that answered, after routing, retries and fallbacks). `notes` are what llmtap noticed about a
    call without refusing it (a Helicone-* header it ignored)."""
    db.execute("ALTER TABLE requests ADD COLUMN upstream VARCHAR")
    db.execute("ALTER TABLE requests ADD COLUMN notes VARCHAR[]")


@migration
def m007_property_names_lower_case(db: duckdb.DuckDBPyConnection) -> None:
    """Property names as ingestion now stores them, lower-cased (`properties['workflow']` finds every call), in logs
    written before it did. Names that become one keep the later entry's value, as a later header would have
    overwritten an earlier one; values are unchanged, and rows whose names are all lower-case are not rewritten."""
    db.execute(
        """
        UPDATE requests SET properties = map_from_entries(list_transform(
            list_filter(map_entries(properties), lambda e, i: NOT list_contains(
                list_transform(map_entries(properties)[i + 1:], lambda later: lower(later.key)), lower(e.key))),
            lambda e: {'key': lower(e.key), 'value': e.value}))
        WHERE list_bool_or(list_transform(map_keys(properties), lambda k: k <> lower(k)))
        """
    )


@migration
def m008_alerts(db: duckdb.DuckDBPyConnection) -> None:
    """`alerts`: every alert llmtap sent, or failed to send, one row per channel of a notice (a notice is one
    `alert_id`). `kind` is `firing` (the metric passed the threshold), `resolved` (it dropped back) or `test`
    (`llmtap alerts test`). `period_start` is the calendar window's start, or for a rolling one when it started firing:
    with `rule` and `scope_value` it is what keeps one alert per window across restarts. `target` names where it went
    without its secret (a Slack URL's token). `requests.ratelimit_policy` is the `Helicone-RateLimit-Policy` a call
    sent, so that a restarted gateway counts the calls already in a header policy's window."""
    db.execute(
        """
        CREATE TABLE alerts (
            alert_id VARCHAR NOT NULL,
            created_at TIMESTAMPTZ NOT NULL,
            rule VARCHAR NOT NULL,
            kind VARCHAR NOT NULL,
            metric VARCHAR,
            time_window VARCHAR,
            period_start TIMESTAMPTZ,
            scope VARCHAR,
            scope_value VARCHAR,
            metric_value DOUBLE,
            threshold DOUBLE,
            summary VARCHAR,
            channel VARCHAR,
            target VARCHAR,
            outcome VARCHAR,
            detail VARCHAR,
            attempts INTEGER
        )
        """
    )
    db.execute("ALTER TABLE requests ADD COLUMN ratelimit_policy VARCHAR")
