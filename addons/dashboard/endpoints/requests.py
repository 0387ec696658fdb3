"""The requests page: a page of calls (newest first, paged by a keyset cursor) and one call opened whole."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ...analytics import queries
from ...pricing import Priced, cost_split
from ...wire.turns import call_turns, json_value
from ..api import ApiError, Request, endpoint

MAX_PAGE = 500
SEARCH_BUDGET_S = 0.5  # a text search's reading time per page, so the page draws within a second
PAGE_COLUMNS = ["time", "id", "provider", "model", "user", "session", "status", "latency_ms", "ttft_ms", "tokens_in",
                "tokens_out", "cost_usd", "cache", "way", "key_owner"]


@endpoint("requests")
def requests(log: Path, request: Request) -> dict[str, Any]:
    """`/api/requests?<scope>&limit=50&before=<cursor>` (or `after=<cursor>`): `{"calls": Rows (newest first),
    "next": the cursor of the next older page or null, "newer": the cursor (an `after`) of the page just newer or
    null, "searched_since": with a text search that stopped before reading the whole scope, the time it read back
    to (`next` then continues from there; a search pages older only, so it has no `newer`), "total": the scope's
    calls, or null with a text search (counting would read every body)}`.

    `/api/requests/<id or its first characters>`: the call opened (see `one_call`)."""
    if request.item is not None:
        return one_call(log, request.item)
    scope = request.scope()
    limit = request.int_arg("limit", 50, 1, MAX_PAGE)
    before, after = _cursor(request, "before"), _cursor(request, "after")
    if before is not None and after is not None:
        raise ApiError(400, "give before or after, not both")
    if scope.text and after is not None:
        # Newer than a call deep in a search would read every body since then, unbudgeted: a search pages older
        # only (the page offers « Newest, and the browser's Back returns to the pages seen).
        raise ApiError(400, "after: a text search pages from the newest calls back (use before), not forward")
    # One row more than shown says whether there is a page beyond this one. A text search reads bodies newest first
    # for at most SEARCH_BUDGET_S, so the page draws within a second; older calls are searched on "Older".
    searched_since = None
    if scope.text and after is None:
        calls, searched_since = queries.search_calls(log, scope, limit + 1, before=before, wide=True,
                                                     budget_s=SEARCH_BUDGET_S)
    else:
        calls = queries.logs(log, scope, limit + 1, before=before, after=after, wide=True)
    rows = calls.rows
    if after is None:
        beyond, rows = len(rows) > limit, rows[:limit]
        older, newer = beyond, before is not None
    else:
        beyond, rows = len(rows) > limit, rows[-limit:]
        older, newer = True, beyond
    page = queries.Rows(calls.columns, calls.types, rows)
    if beyond:
        searched_since = None  # a full page: the next one goes on from its last call, as without a search
    if searched_since is not None:  # what is older than where the search stopped is still unread
        next_cursor: str | None = f"{_iso(searched_since)}~"
    else:
        next_cursor = encode_cursor(rows[-1]) if older and rows else None
    return {"calls": page,
            "next": next_cursor,
            "searched_since": searched_since,
            "newer": encode_cursor(rows[0]) if newer and rows and not scope.text else None,
            "total": queries.count_calls(log, scope)}


def encode_cursor(row: tuple) -> str:
    """A call's place as a URL keeps it: `<created_at, ISO UTC to the microsecond>~<request id>`. A cursor with no
    id (`<time>~`) is a time: the calls before it."""
    return f"{_iso(row[0])}~{row[1]}"


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def _cursor(request: Request, name: str) -> queries.Cursor | None:
    text = request.arg(name)
    if text is None:
        return None
    at, sep, request_id = text.partition("~")
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        when = None
    if not sep or when is None or when.tzinfo is None:
        raise ApiError(400, f"{name}: expected a cursor as <ISO time>~<request id> (as `next` gives it), got {text!r}")
    return when, request_id


def one_call(log: Path, id_prefix: str) -> dict[str, Any]:
    """`{"call": the row without its bodies, "conversation" and "answer": [{"role", "text"}] (the wire format's
    transcript), "request_body", "response_body" (JSON), "attempts": the attempt log, "cost": its breakdown}`; 404
    when no call's id starts with `id_prefix`, 409 when several do."""
    found = queries.call(log, id_prefix.strip())
    if not found.rows:
        raise ApiError(404, f"no call with an id starting {id_prefix!r}")
    rows = found.dicts()
    if len(rows) > 1 and rows[0]["request_id"] != id_prefix:
        raise ApiError(409, f"{id_prefix!r} starts several ids ({rows[0]['request_id']}, {rows[1]['request_id']}, "
                            "…): give more of it")
    row = rows[0]
    turns = call_turns(row["path"], row["request_body"], row["response_body"])
    shown = [c for c in found.columns if c not in ("request_body", "response_body")]
    return {"call": queries.Rows(found.columns, found.types, found.rows[:1]).only(shown),
            "conversation": [{"role": role, "text": text} for role, text in turns.conversation],
            "answer": [{"role": role, "text": text} for role, text in turns.answer],
            "known_format": turns.known_format,
            "request_body": json_value(row["request_body"]),
            "response_body": json_value(row["response_body"]),
            "attempts": row["attempt_log"] or [],
            "cost": cost_breakdown(row)}


def cost_breakdown(row: dict[str, Any]) -> dict[str, Any]:
    """Tokens by kind, the logged cost (null when unknown, with the reason) and where its price came from; for a
    genai-prices price, genai-prices' own split of it into input and output."""
    tokens = Priced(input_tokens=row["input_tokens"], output_tokens=row["output_tokens"],
                    cached_input_tokens=row["cached_input_tokens"],
                    cache_write_input_tokens=row["cache_write_input_tokens"], reasoning_tokens=row["reasoning_tokens"])
    split = None
    model = row["model"] or row["model_requested"]
    if row["price_source"] == "genai-prices" and model and row["provider"]:
        # The provider's name is its genai-prices id unless config says otherwise (providers.prices_provider), which
        # the log does not keep: the split is labelled as genai-prices' and checked against the logged total.
        parts = cost_split(tokens, model, row["provider"], row["created_at"].replace(second=0, microsecond=0))
        if parts is not None:
            split = {"input_usd": parts[0], "output_usd": parts[1],
                     # The log keeps 10 decimal places (DECIMAL(18,10)).
                     "matches_logged": round(parts[0] + parts[1], 10) == row["cost_usd"]}
    return {"tokens": {"input": row["input_tokens"], "cached_input": row["cached_input_tokens"],
                       "cache_write": row["cache_write_input_tokens"], "output": row["output_tokens"],
                       "reasoning": row["reasoning_tokens"]},
            "cost_usd": row["cost_usd"], "price_source": row["price_source"], "price_error": row["price_error"],
            "cost_saved_usd": row["cost_saved_usd"], "genai_prices_split": split}
