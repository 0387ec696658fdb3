"""A realistic llmtap log of any size, made by DuckDB alone, for the report benchmarks (bench_reports.py).

The file is a real llmtap log: its schema comes from llmtap's own migrations, and every row is made in SQL from
`range()` and `hash()` (no Python row loop), so a million rows take seconds to a few minutes. What it holds:
- calls spread over the 30 days before now, written in time order as the gateway writes them;
- 20 models over 4 providers at their list prices per million tokens; two models have no known price (cost NULL,
  with price_error), about 3% of calls;
- ~1,000 users, a few of them making most calls; 12 gateway keys with owners;
- sessions of 3 to 30 calls (70% of calls) whose session paths form trees, with the properties workflow, step
  and environment; the rest are single calls;
- ~10% cache hits (cost 0, cost_saved_usd what the answer cost), ~30% misses; ~3% errors (429s retried three times
  with their attempt_log, 5xx, 4xx); ~2% answers that came after a retried 429; rate-limit headers per provider;
- optionally the bodies: OpenAI or Anthropic request and response JSON of 1 to 3 KB, with text drawn from a
  vocabulary per call and a ticket number, so a text search reads real bodies and finds a few calls.
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
from llmtap.migrations import migrate

DAYS = 30
MEAN_SESSION_CALLS = 0.7 * 16.5 + 0.3  # 70% are sessions of 3..30 calls (uniformly), 30% single calls
ROWS_PER_CHUNK = 1_000_000  # one INSERT per chunk: memory stays bounded at 10M rows

# (provider, model answered, model asked for, $ per million input tokens, $ per million output tokens, weight %)
MODELS = [
    ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini", 0.15, 0.60, 19),
    ("openai", "gpt-4o-2024-08-06", "gpt-4o", 2.50, 10.00, 10),
    ("openai", "gpt-4.1-2025-04-14", "gpt-4.1", 2.00, 8.00, 6),
    ("openai", "gpt-4.1-mini-2025-04-14", "gpt-4.1-mini", 0.40, 1.60, 8),
    ("openai", "gpt-4.1-nano-2025-04-14", "gpt-4.1-nano", 0.10, 0.40, 4),
    ("openai", "o3-mini-2025-01-31", "o3-mini", 1.10, 4.40, 3),
    ("openai", "o4-mini-2025-04-16", "o4-mini", 1.10, 4.40, 3),
    ("openai", "ft:gpt-4o-mini-2024-07-18:acme::B1x9qZ", "ft:gpt-4o-mini-2024-07-18:acme::B1x9qZ", None, None, 2),
    ("anthropic", "claude-sonnet-4-20250514", "claude-sonnet-4-0", 3.00, 15.00, 10),
    ("anthropic", "claude-3-5-haiku-20241022", "claude-3-5-haiku-latest", 0.80, 4.00, 8),
    ("anthropic", "claude-opus-4-1-20250805", "claude-opus-4-1", 15.00, 75.00, 2),
    ("anthropic", "claude-3-7-sonnet-20250219", "claude-3-7-sonnet-latest", 3.00, 15.00, 3),
    ("gemini", "gemini-2.0-flash", "gemini-2.0-flash", 0.10, 0.40, 6),
    ("gemini", "gemini-2.5-flash", "gemini-2.5-flash", 0.30, 2.50, 4),
    ("gemini", "gemini-2.5-pro", "gemini-2.5-pro", 1.25, 10.00, 2),
    ("gemini", "gemini-1.5-flash", "gemini-1.5-flash", 0.075, 0.30, 1),
    ("groq", "llama-3.3-70b-versatile", "llama-3.3-70b-versatile", 0.59, 0.79, 4),
    ("groq", "llama-3.1-8b-instant", "llama-3.1-8b-instant", 0.05, 0.08, 3),
    ("groq", "mixtral-8x7b-32768", "mixtral-8x7b-32768", 0.24, 0.24, 1),
    ("groq", "acme-llama-70b-ft", "acme-llama-70b-ft", None, None, 1),
]
PROVIDERS = {  # provider -> (host, path) of its OpenAI-compatible (or own) endpoint
    "openai": ("api.openai.com", "/v1/chat/completions"),
    "anthropic": ("api.anthropic.com", "/v1/messages"),
    "gemini": ("generativelanguage.googleapis.com", "/v1beta/openai/chat/completions"),
    "groq": ("api.groq.com", "/openai/v1/chat/completions"),
}
WORKFLOWS = {  # workflow -> its steps, in the order a session walks them
    "research": ["plan", "search", "read", "summarize", "cite"],
    "support": ["classify", "retrieve", "draft", "review"],
    "codegen": ["spec", "generate", "test", "fix"],
    "extract": ["ocr", "fields", "validate"],
    "translate": ["detect", "translate", "polish"],
    "triage": ["read", "label", "route"],
}
VOCABULARY = """
account adapter agent answer api archive audit backlog balance batch benchmark billing branch budget buffer cache
calendar campaign capacity catalog channel checkout claim client cluster commit compliance config contract cost
customer dashboard database deadline delivery dependency deploy design device discount dispatch document domain
draft embedding endpoint engine error estimate event export feature feedback field filter forecast format gateway
graph handler header history incident index inventory invoice issue journal kernel label latency ledger license
limit listing locale logic manifest margin market merge message metric migration milestone model module monitor
network notice offer onboarding order outage package pager parser partner patch payload payment pipeline policy
portal pricing priority process product profile prompt proposal protocol query queue quota quote rate receipt
record refund region release report request resource response retry revenue review risk roadmap rollout route
runtime sample schedule schema scope script search segment sensor server service session settlement shipment
signal snapshot source spec sprint stack status storage stream subscription summary supplier support survey
table target task template tenant ticket timeline token topic trace transfer trend trigger upgrade usage user
vendor version volume warehouse webhook widget window workflow workload
analyse approve assign calculate check clarify compare confirm convert create debug describe detect draft
estimate explain extract find fix forecast generate group highlight identify improve investigate list merge
migrate monitor normalise outline plan prioritise propose rank recommend reconcile refactor rewrite route
schedule score sort split suggest summarise tag test translate update validate verify
quickly carefully briefly precisely politely formally urgently clearly fully
the a an of for with from about into over under after before during per each every this that these those our
their its new old late early large small critical minor pending failed open closed weekly monthly daily
""".split()


def create(path: Path, rows: int, bodies: bool, end: datetime | None = None) -> dict[str, float]:
    """Write a log of about `rows` calls (whole sessions: within a fraction of a percent) to a new file at `path`,
    with or without bodies; returns what it took (rows, seconds, bytes)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in (path, path.with_name(path.name + ".wal")):
        stale.unlink(missing_ok=True)
    end = end or datetime.now(UTC)
    sessions = round(rows / MEAN_SESSION_CALLS)
    per_chunk = max(1, round(ROWS_PER_CHUNK / MEAN_SESSION_CALLS))
    started = time.perf_counter()
    with duckdb.connect(str(path)) as db:
        migrate(db)
        _reference_tables(db)
        for first in range(0, sessions, per_chunk):
            db.execute(INSERT.format(bodies=BODIES if bodies else NO_BODIES),
                       {"first": first, "last": min(sessions, first + per_chunk), "sessions": sessions,
                        "end_at": end, "span_us": DAYS * 86_400_000_000})
            print(f"  {path.name}: {min(sessions, first + per_chunk):,}/{sessions:,} sessions", file=sys.stderr)
        db.execute("CHECKPOINT")
        written = (db.execute("SELECT count(*) FROM requests").fetchone() or (0,))[0]
    return {"rows": written, "seconds": time.perf_counter() - started, "bytes": path.stat().st_size}


def _reference_tables(db: duckdb.DuckDBPyConnection) -> None:
    """Temporary lookup tables the INSERT draws from (gone when the connection closes)."""
    db.execute("CREATE TEMP TABLE models (slot INTEGER, provider VARCHAR, model VARCHAR, requested VARCHAR, "
               "input_usd_per_mtok DECIMAL(18, 6), output_usd_per_mtok DECIMAL(18, 6), host VARCHAR, path VARCHAR)")
    db.execute("CREATE TEMP TABLE model_slots (pick INTEGER, slot INTEGER)")  # 100 picks, each model `weight` times
    picks = 0
    for slot, (provider, model, requested, input_price, output_price, weight) in enumerate(MODELS):
        db.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   [slot, provider, model, requested, input_price, output_price, *PROVIDERS[provider]])
        db.execute("INSERT INTO model_slots SELECT ? + range, ? FROM range(?)", [picks, slot, weight])
        picks += weight
    assert picks == 100, picks
    db.execute("CREATE TEMP TABLE workflows (w INTEGER, workflow VARCHAR, steps VARCHAR[])")
    for w, (workflow, steps) in enumerate(WORKFLOWS.items()):
        db.execute("INSERT INTO workflows VALUES (?, ?, ?)", [w, workflow, steps])
    db.execute("CREATE TEMP TABLE vocabulary AS SELECT ?::VARCHAR[] AS words", [VOCABULARY])


# u(x): a uniform draw in [0, 1) for this call (`i`) and purpose `x`; s(x) the same for the call's session.
INSERT = """
INSERT INTO requests BY NAME
WITH sessions AS (
    SELECT sid,
           (3 + hash(sid, 'len') % 28)::BIGINT AS length,
           $end_at - to_microseconds($span_us + 1_800_000_000) +  -- a session's last call (< 21 min) before the end
               to_microseconds((sid * ($span_us / $sessions))::BIGINT)
               + to_microseconds((hash(sid, 'jitter') % 60_000_000)::BIGINT) AS started_at,
           hash(sid, 'kind') % 100 < 70 AS is_session,
           'user-' || lpad(floor(1000 * pow((hash(sid, 'user') % 1000003) / 1000003.0, 3))::INTEGER::VARCHAR, 4, '0')
               AS user_id,
           (hash(sid, 'workflow') % 6)::INTEGER AS w,
           CASE WHEN hash(sid, 'env') % 100 < 80 THEN 'production' WHEN hash(sid, 'env') % 100 < 95 THEN 'staging'
                ELSE 'development' END AS environment,
           (hash(sid, 'model') % 100)::INTEGER AS session_pick,
           (hash(sid, 'key') % 12)::BIGINT AS key_no
    FROM range($first, $last) AS t(sid)
),
calls AS (
    SELECT s.*, unnest(range(s.length)) AS k FROM sessions s
),
draws AS (
    SELECT c.*, c.sid * 32 + c.k AS i,
           (hash(c.sid * 32 + c.k, 'a') % 1000003) / 1000003.0 AS u_model,
           (hash(c.sid * 32 + c.k, 'b') % 1000003) / 1000003.0 AS u_outcome,
           (hash(c.sid * 32 + c.k, 'c') % 1000003) / 1000003.0 AS u_cache,
           (hash(c.sid * 32 + c.k, 'd') % 1000003) / 1000003.0 AS u_in,
           (hash(c.sid * 32 + c.k, 'e') % 1000003) / 1000003.0 AS u_out,
           (hash(c.sid * 32 + c.k, 'f') % 1000003) / 1000003.0 AS u_misc
    FROM calls c
    WHERE c.is_session OR c.k = 0  -- a single call is a session of one, without session headers
),
facts AS (
    SELECT d.*, m.*, wf.workflow, wf.steps,
           d.started_at + to_microseconds((d.k * (2_000_000 + hash(d.i, 'gap') % 40_000_000))::BIGINT) AS created_at,
           CASE WHEN d.u_outcome < 0.012 THEN 429 WHEN d.u_outcome < 0.018 THEN 500
                WHEN d.u_outcome < 0.022 THEN 502 WHEN d.u_outcome < 0.025 THEN 503
                WHEN d.u_outcome < 0.029 THEN 400 WHEN d.u_outcome < 0.030 THEN NULL ELSE 200 END AS status,
           d.u_outcome BETWEEN 0.030 AND 0.050 AS after_429,
           d.u_cache < 0.10 AND d.u_outcome >= 0.050 AS hit,  -- a hit is an answer, never after a retry
           d.u_cache >= 0.10 AND d.u_cache < 0.40 AS miss,
           (200 + 7800 * pow(d.u_in, 3))::BIGINT AS input_tokens,
           (20 + 1480 * pow(d.u_out, 2))::BIGINT AS output_tokens,
           wf.steps[1 + (d.k % len(wf.steps))] AS step,
           d.k % len(wf.steps) AS depth
    FROM draws d
    JOIN model_slots p  -- 80% of a session's calls go to its model, the rest to any
        ON p.pick = CASE WHEN d.u_model < 0.8 THEN d.session_pick ELSE floor((d.u_model - 0.8) * 500)::INT END
    JOIN models m ON m.slot = p.slot
    JOIN workflows wf ON wf.w = d.w
),
priced AS (
    SELECT f.*,
           f.status IS NOT NULL AND f.status < 400 AS answered,
           CASE WHEN f.u_misc < 0.2 THEN (f.input_tokens * f.u_misc * 4)::BIGINT ELSE 0 END AS cached_tokens,
           ((f.input_tokens * f.input_usd_per_mtok + f.output_tokens * f.output_usd_per_mtok) / 1000000)
               ::DECIMAL(18, 10) AS list_cost_usd
    FROM facts f
)
SELECT
    lower(format('{{}}-{{}}-{{}}-{{}}-{{}}', substr(h, 1, 8), substr(h, 9, 4), substr(h, 13, 4), substr(h, 17, 4),
                 substr(h, 21, 12))) AS request_id,
    created_at,
    CASE WHEN u_misc < 0.8 THEN 'gateway' ELSE 'proxy' END AS way,
    provider, 'POST' AS method,
    CASE WHEN u_misc < 0.8 THEN '127.0.0.1:8787' ELSE host END AS host,
    CASE WHEN u_misc < 0.8 THEN '/v1/chat/completions' ELSE path END AS path,
    CASE WHEN status IS NOT NULL AND NOT hit THEN 'https://' || host END AS upstream,
    CASE WHEN answered THEN model END AS model,
    requested AS model_requested,
    status,
    CASE status WHEN 429 THEN 'rate_limit_error: Rate limit reached for ' || requested || ' (requests per min)'
                WHEN 500 THEN 'api_error: The server had an error while processing your request'
                WHEN 502 THEN 'api_error: Bad gateway'
                WHEN 503 THEN 'overloaded_error: Overloaded'
                WHEN 400 THEN 'invalid_request_error: max_tokens is too large for this model'
                ELSE CASE WHEN status IS NULL THEN 'upstream unreachable: connection reset by peer' END END AS error,
    u_out < 0.4 AS stream,
    CASE WHEN hit THEN 1.5 + 4 * u_in
         WHEN answered THEN 250 + output_tokens * (8 + 10 * u_misc) ELSE 80 + 400 * u_in END AS latency_ms,
    CASE WHEN hit THEN 1.2 + 3 * u_in WHEN answered THEN 180 + 300 * u_in ELSE 60 + 300 * u_in END AS ttfb_ms,
    CASE WHEN hit THEN 1.2 + 3 * u_in WHEN answered THEN 200 + 400 * u_in END AS ttft_ms,
    CASE WHEN answered THEN input_tokens END AS input_tokens,
    CASE WHEN answered THEN output_tokens END AS output_tokens,
    CASE WHEN answered THEN cached_tokens END AS cached_input_tokens,
    CASE WHEN answered AND provider = 'anthropic' THEN CASE WHEN u_misc > 0.9 THEN input_tokens // 2 ELSE 0 END
         END AS cache_write_input_tokens,
    CASE WHEN answered AND requested LIKE 'o%-mini' THEN output_tokens * 3 // 4 END AS reasoning_tokens,
    CASE WHEN answered THEN input_tokens + output_tokens END AS total_tokens,
    CASE WHEN hit AND answered THEN 0 WHEN NOT answered THEN 0 ELSE list_cost_usd END AS cost_usd,
    CASE WHEN hit AND answered THEN 'cache-hit' WHEN NOT answered THEN 'not-billed'
         WHEN input_usd_per_mtok IS NULL THEN NULL ELSE 'genai-prices' END AS price_source,
    CASE WHEN answered AND NOT hit AND input_usd_per_mtok IS NULL THEN
         'genai-prices has no price for ' || provider || ' model ' || model || ' (add it under pricing)' END
         AS price_error,
    CASE WHEN hit AND answered THEN list_cost_usd END AS cost_saved_usd,
    CASE WHEN hit THEN 'HIT' WHEN miss THEN 'MISS' END AS cache_status,
    CASE WHEN hit AND answered THEN 0 WHEN status = 429 THEN 3 WHEN after_429 THEN 2 ELSE 1 END AS attempts,
    CASE WHEN hit AND answered THEN 0 WHEN status = 429 THEN 2 WHEN after_429 THEN 1 ELSE 0 END AS retries,
    CASE WHEN status = 429 AND NOT hit THEN [
             {{'provider': provider, 'model': requested, 'status': 429, 'latency_ms': 90 + 40 * u_in,
              'wait_ms': 1000.0, 'retry_after_s': 1.0, 'error': 'rate_limit_error'}},
             {{'provider': provider, 'model': requested, 'status': 429, 'latency_ms': 85 + 40 * u_out,
              'wait_ms': 2000.0, 'retry_after_s': 2.0, 'error': 'rate_limit_error'}},
             {{'provider': provider, 'model': requested, 'status': 429, 'latency_ms': 95 + 40 * u_misc,
              'wait_ms': NULL, 'retry_after_s': 2.0, 'error': 'rate_limit_error'}}]
         WHEN after_429 AND answered AND NOT hit THEN [
             {{'provider': provider, 'model': requested, 'status': 429, 'latency_ms': 90 + 40 * u_in,
              'wait_ms': 1000.0, 'retry_after_s': 1.0, 'error': 'rate_limit_error'}},
             {{'provider': provider, 'model': requested, 'status': 200, 'latency_ms': 250 + output_tokens * 9.0,
              'wait_ms': NULL, 'retry_after_s': NULL, 'error': NULL}}]
         END AS attempt_log,
    user_id,
    CASE WHEN is_session THEN 'sess-' || substr(md5(sid::VARCHAR), 1, 20) END AS session_id,
    CASE WHEN is_session THEN
         '/' || workflow || CASE WHEN k = 0 THEN '' ELSE '/' || array_to_string(steps[1:depth], '/') ||
         CASE WHEN depth = 0 THEN 'retry-' || (k // len(steps)) ELSE '' END END END AS session_path,
    CASE WHEN is_session THEN workflow || ' #' || sid END AS session_name,
    CASE WHEN is_session THEN workflow || '-' || step || '-v' || (1 + sid % 3) END AS prompt_id,
    CASE WHEN is_session THEN MAP {{'workflow': workflow, 'step': step, 'environment': environment}}
         WHEN u_misc < 0.5 THEN MAP {{'environment': environment}} ELSE MAP {{}}::MAP(VARCHAR, VARCHAR) END
         AS properties,
    'sha256:' || substr(md5('key' || key_no), 1, 16) AS key_hash,
    CASE WHEN u_misc < 0.8 THEN ['platform', 'search', 'support', 'growth', 'data', 'mobile', 'billing', 'infra',
                                 'ml', 'web', 'sales', 'ops'][1 + key_no] || '-team' END AS key_owner,
    CASE WHEN status IS NULL OR hit THEN NULL
         WHEN provider = 'anthropic' THEN MAP {{
             'anthropic-ratelimit-requests-limit': '4000',
             'anthropic-ratelimit-requests-remaining': (3999 - floor(4000 * pow(u_in, 8)))::INT::VARCHAR,
             'anthropic-ratelimit-tokens-limit': '400000',
             'anthropic-ratelimit-tokens-remaining': (400000 - floor(400000 * pow(u_out, 8)))::INT::VARCHAR}}
         WHEN provider IN ('openai', 'groq') THEN MAP {{
             'x-ratelimit-limit-requests': '10000',
             'x-ratelimit-remaining-requests': (9999 - floor(10000 * pow(u_in, 8)))::INT::VARCHAR,
             'x-ratelimit-limit-tokens': '2000000',
             'x-ratelimit-remaining-tokens': (2000000 - floor(2000000 * pow(u_out, 8)))::INT::VARCHAR,
             'x-ratelimit-reset-requests': '6ms'}}
         END AS ratelimit,
    {bodies}
FROM (SELECT *, md5(i::VARCHAR || 'id') AS h FROM priced), vocabulary
"""

NO_BODIES = "NULL::JSON AS request_body, NULL::JSON AS response_body"

# Text of a call: words drawn from the vocabulary by the call's own hashes, and a ticket number one call in a few
# thousand shares, so `logs -q ticket-12345` finds a handful of calls by reading every body.
_WORDS = ("array_to_string(list_transform(range(({n})::BIGINT), "
          "lambda j: words[(1 + hash(i, j, '{salt}') % {size})::BIGINT]), ' ')")
_PROMPT = ("'Ticket ticket-' || (hash(i, 'ticket') % 500000) || ' for ' || user_id || ': ' || "
           + _WORDS.format(n="120 + hash(i, 'n') % 120", salt="q", size=len(VOCABULARY)))
_ANSWER = _WORDS.format(n="40 + hash(i, 'm') % 140", salt="r", size=len(VOCABULARY))
_SYSTEM = "'You are the ' || step || ' step of the ' || workflow || ' workflow at Acme. Answer in plain English.'"
BODIES = f"""
    CASE WHEN provider = 'anthropic' THEN json_object(
             'model', requested, 'max_tokens', 1024, 'system', {_SYSTEM}, 'stream', u_out < 0.4,
             'messages', json_array(json_object('role', 'user', 'content', {_PROMPT})))
         ELSE json_object(
             'model', requested, 'temperature', 0.7, 'stream', u_out < 0.4,
             'messages', json_array(json_object('role', 'system', 'content', {_SYSTEM}),
                                    json_object('role', 'user', 'content', {_PROMPT})))
         END AS request_body,
    CASE WHEN status IS NULL THEN NULL
         WHEN status >= 400 THEN json_object('error', json_object('type', split_part(error, ':', 1),
                                                                  'message', split_part(error, ': ', 2)))
         WHEN provider = 'anthropic' THEN json_object(
             'id', 'msg_' || substr(h, 1, 24), 'type', 'message', 'role', 'assistant', 'model', model,
             'content', json_array(json_object('type', 'text', 'text', {_ANSWER})),
             'stop_reason', 'end_turn',
             'usage', json_object('input_tokens', input_tokens, 'output_tokens', output_tokens))
         ELSE json_object(
             'id', 'chatcmpl-' || substr(h, 1, 24), 'object', 'chat.completion', 'created', epoch(created_at)::BIGINT,
             'model', model,
             'choices', json_array(json_object('index', 0, 'finish_reason', 'stop',
                                               'message', json_object('role', 'assistant', 'content', {_ANSWER}))),
             'usage', json_object('prompt_tokens', input_tokens, 'completion_tokens', output_tokens,
                                  'total_tokens', input_tokens + output_tokens))
         END AS response_body
"""
