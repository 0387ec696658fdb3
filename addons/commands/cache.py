"""The response cache: `llmtap cache stats`, `llmtap cache clear`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click

from ..analytics.scope import AGE, AGE_UNITS_S, Scope
from ..config import Config
from ..log_file import first_line
from ..money import format_usd
from .options import config_option
from .reading import warn_if_storage_unhealthy


@click.group()
def cache() -> None:
    """The response cache: stats, clear."""


@cache.command()
@config_option()
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True,
              help="hits and savings over the last N days")
def stats(config: Config, days: int) -> int:
    """What the cache holds, and what it saved."""
    warn_if_storage_unhealthy(config)
    return cache_stats(config, days)


def age_s(ctx: click.Context, param: click.Parameter, text: str | None) -> float | None:
    """'90s', '30m', '12h', '7d' or plain seconds, as seconds."""
    if text is None:
        return None
    cleaned = text.strip().lower()
    match = AGE.match(cleaned if not cleaned.replace(".", "", 1).isdigit() else cleaned + "s")
    if not match:
        raise click.BadParameter(f"expected an age such as 90s, 30m, 12h or 7d, got {text!r}", ctx=ctx, param=param)
    return float(match[1]) * AGE_UNITS_S[match[2]]


@cache.command()
@config_option()
@click.option("--older-than", "older_than_s", metavar="AGE", callback=age_s,
              help="only answers stored longer ago than AGE: 90s, 30m, 12h, 7d")
def clear(config: Config, older_than_s: float | None) -> int:
    """Remove cached answers."""
    return cache_clear(config, older_than_s)


def cache_stats(config: Config, days: int) -> int:
    from ..cache_store import CacheStore

    if not config.cache_path.exists():
        print(f"no cache yet at {config.cache_path} (it starts with the first Helicone-Cache-Enabled call)")
        return 0
    store = CacheStore(config.cache_path, config.cache_max_bytes)
    stats = store.stats()
    store.close()
    oldest = stats["oldest_stored_at"]
    lines = [
        f"cache        {stats['path']}",
        f"answers      {stats['answers']:,} under {stats['keys']:,} keys",
        f"size         {stats['bytes']:,} of {stats['max_bytes']:,} bytes "
        f"({100 * stats['bytes'] / stats['max_bytes']:.1f}%)",
        f"oldest       {datetime.fromtimestamp(oldest).isoformat(timespec='seconds') if oldest else '-'}",
    ]
    if config.storage_path.exists():
        import duckdb

        from ..analytics import queries

        try:
            since = datetime.now(UTC) - timedelta(days=days)
            totals = queries.totals(config.storage_path, Scope(since=since)).dicts()[0]
        except duckdb.Error as e:
            lines.append(f"last {days} days  unknown: {config.storage_path} cannot be read ({first_line(e)}); "
                         "starting the gateway once brings an old log up to date")
        else:
            hits, misses = totals["cache_hits"], totals["cache_misses"]
            rate = f"{100 * hits / (hits + misses):.1f}%" if hits + misses else "-"
            lines.append(f"last {days} days  {hits:,} hits, {misses:,} misses (hit rate {rate}), "
                         f"saved {format_usd(totals['saved_usd'])}")
    print("\n".join(lines))
    return 0


def cache_clear(config: Config, older_than_s: float | None) -> int:
    from ..cache_store import CacheStore, CacheUnreadable, discard_unreadable

    try:
        store = CacheStore(config.cache_path, config.cache_max_bytes)
    except CacheUnreadable:
        discard_unreadable(config.cache_path)  # nothing in it can be read: clearing it is starting afresh
        print(f"removed the unreadable cache in {config.cache_path}")
        return 0
    removed = store.clear(older_than_s)
    store.close()
    print(f"removed {removed:,} cached answers" + (f" older than {older_than_s:,.0f} s" if older_than_s else ""))
    return 0
