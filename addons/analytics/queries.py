"""The query layer: every question llmtap answers about its log, as a named, parameterised query computed by DuckDB.

The terminal commands, the web dashboard and the alert engine are views over these functions and keep no SQL of
their own. Each function takes the log's path and a `Scope` (time range and filters, scope.py) and returns `Rows`:
column names, DuckDB types (so a view writes JSON columns as JSON and money as money) and the rows. Sums, shares,
percentiles, buckets and totals are computed here, in SQL; a view only lays the rows out.

Conventions every query keeps, so views stay thin:
- money columns end in `_usd` and are DECIMAL sums of `cost_usd` (exact); an unknown price stays NULL and is counted
  (`unpriced`), never added as 0. A sum over only unpriced calls is NULL, not 0.
- latencies end in `_ms`, times are TIMESTAMPTZ shown in UTC; periods are UTC.
- every read goes through `run` (rows.py), the one way of reading the log (while the gateway writes it, or after it
  stopped).

One module per family of questions; this module is their one import surface (`queries.costs(...)`):
- rows.py: `Rows`, `run`, `scoped`; dimensions.py: what a report groups by;
- spend.py: totals, unpriced, costs, token_mix (for re-pricing), users, trends;
  calls.py: logs, count_calls, call, tail, export;
- sessions.py: sessions and traces; limits.py: throttling and remaining budgets;
- properties.py: the property names calls carry;
- overview.py: the scope at a glance and over time; buckets.py: time buckets for charts;
- alerting.py: alert and budget rules' metrics, what budget counters start from, and the alerts sent.
- usage.py: what rate-limit policies' calls used, for the gateway's counters after a restart.
"""

from .alerting import alert_history, budgets, last_fired, last_notices, rule_state, rule_states, rule_usage, rule_values
from .buckets import step_for
from .calls import (
    EXPORT_FORMATS,
    SEARCH_WINDOWS,
    Cursor,
    call,
    count_calls,
    export,
    last_seq,
    logs,
    search_calls,
    tail,
)
from .dimensions import DIMENSIONS, PERIODS, PROPERTY, REPORT_COLUMNS, UTC_DAY, Dimension, dimension
from .limits import headroom_series, limits, ratelimit_headers
from .overview import series, spend_by_model, summary
from .properties import property_names
from .rows import Rows, reading, run, scoped
from .sessions import SESSION_COLUMNS, session_totals, sessions, sessions_matching, trace
from .spend import TOKEN_COLUMNS, costs, token_mix, totals, trends, unpriced, users
from .usage import header_policies, policy_usage

__all__ = ["alert_history", "last_notices", "rule_usage", "rule_values",
           "budgets", "last_fired", "rule_state", "rule_states",
           "header_policies", "policy_usage",
           "DIMENSIONS", "EXPORT_FORMATS", "PERIODS", "PROPERTY", "REPORT_COLUMNS", "SEARCH_WINDOWS",
           "SESSION_COLUMNS", "TOKEN_COLUMNS", "UTC_DAY", "call", "costs", "count_calls", "Cursor", "Dimension",
           "dimension", "export",
           "headroom_series", "last_seq", "limits", "logs", "property_names", "ratelimit_headers", "reading", "Rows",
           "run", "scoped", "search_calls", "series", "session_totals", "sessions", "sessions_matching",
           "spend_by_model", "step_for", "summary", "tail", "token_mix", "totals", "trace", "trends", "unpriced",
           "users"]
