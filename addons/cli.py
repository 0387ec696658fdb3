"""The `llmtap` command: start the gateway, print the shell lines that point apps at it, and query the log."""

from __future__ import annotations

import argparse
import csv
import json
import shlex
import sys
from dataclasses import asdict
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, load_config
from .provider_keys import keyless_provider_lines

CA_CERT = "mitmproxy-ca-cert.pem"
CA_BUNDLE = "llmtap-ca-bundle.pem"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmtap", description="A self-hosted AI gateway for LLM observability.")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("start", help="run the gateway in the foreground")
    start.add_argument("--config", help="YAML config (default: config/llmtap.yaml if present)")
    start.add_argument("--web", action="store_true", help="run mitmweb (live inspection) instead of mitmdump")
    start.add_argument("mitmproxy_args", nargs=argparse.REMAINDER, help="after --: more mitmdump/mitmweb arguments")

    env = commands.add_parser("env", help="print export lines that point apps at the gateway")
    env.add_argument("--config")

    sql = commands.add_parser("sql", help="run a SQL query over the log (works while the gateway runs)")
    sql.add_argument("query")
    sql.add_argument("--config")
    sql.add_argument("--format", choices=["table", "json", "csv"], help="default: table on a terminal, else json")

    cache_parser = commands.add_parser("cache", help="the response cache: stats, clear")
    cache_commands = cache_parser.add_subparsers(dest="cache_command", required=True)
    stats_parser = cache_commands.add_parser("stats", help="what the cache holds, and what it saved")
    stats_parser.add_argument("--config")
    stats_parser.add_argument("--days", type=int, default=7, help="hits and savings over the last N days (default 7)")
    clear_parser = cache_commands.add_parser("clear", help="remove cached answers")
    clear_parser.add_argument("--config")
    clear_parser.add_argument("--older-than", type=duration_s, metavar="AGE",
                             help="only answers stored longer ago than AGE: 90s, 30m, 12h, 7d")

    status = commands.add_parser("status", help="is every call reaching the log? (exit status 1 when not)")
    status.add_argument("--config")
    status.add_argument("--json", action="store_true", help="the health record as JSON")

    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as e:
        print(f"llmtap: config error: {e}", file=sys.stderr)
        return 2
    if args.command == "start":
        return start_gateway(config, args.config, args.web, [a for a in args.mitmproxy_args if a != "--"])
    if args.command == "env":
        ensure_ca(config)
        print(env_lines(config))
        return 0
    if args.command == "status":
        return storage_status(config, args.json)
    if args.command == "cache":
        if args.cache_command == "stats":
            warn_if_storage_unhealthy(config)
            return cache_stats(config, args.days)
        return cache_clear(config, args.older_than)
    warn_if_storage_unhealthy(config)
    return run_sql(config, args.query, args.format)


def duration_s(text: str) -> float:
    """'90s', '30m', '12h', '7d' or plain seconds, as seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    number, unit = (text[:-1], text[-1]) if text and text[-1] in units else (text, "s")
    try:
        value = float(number) * units[unit]
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an age such as 90s, 30m, 12h or 7d, got {text!r}")
    return value


def storage_status(config: Config, as_json: bool) -> int:
    """Print whether rows are reaching the log; 1 when storage is failing or rows were lost, else 0."""
    from .spool import fallback_spool_dir, spool_dir
    from .store_health import STALE_AFTER_S, age_s, gateway_running, read_health

    fallback = fallback_spool_dir(config.storage_path, config.storage.fallback_spool_dir)
    health = read_health(config.storage_path, fallback)
    running = gateway_running(config.storage_path)
    if health is not None and running and age_s(health) > STALE_AFTER_S:  # it cannot even write its health
        health.state, health.reason = "failing", (
            f"the gateway has not updated its health for {age_s(health):.0f} s: nothing beside the log "
            f"(nor in {fallback}) can be written; last known: {health.reason or health.state}")
    if as_json:
        print(json.dumps({**(asdict(health) if health else {}), "gateway_running": running}))
        return 1 if health and health.failing else 0
    lines = [f"log          {config.storage_path.resolve()}"]
    if health is None:
        lines.append("state        unknown: no gateway has written this log yet")
        print("\n".join(lines))
        return 0
    pid = f" (pid {health.pid})" if running else ""
    crashed = not running and health.running  # it never wrote its final state
    lines += [
        f"gateway      {'running' if running else 'not running'}{pid}"
        + (": it stopped without shutting down; the next start replays its spool" if crashed else ""),
        f"state        {health.state} since {health.since}",
    ]
    if health.reason:
        lines.append(f"reason       {health.reason}")
    lines += [
        f"rows         {health.rows_waiting:,} waiting, {health.rows_lost:,} lost, "
        f"{health.rows_written:,} written since the gateway started",
        f"spool        {health.spool or spool_dir(config.storage_path)}",
        f"updated      {health.updated_at}",
    ]
    print("\n".join(lines))
    return 1 if health.failing else 0


def warn_if_storage_unhealthy(config: Config) -> None:
    """One line on stderr when the log is missing rows, so a reader does not take a partial log for the whole."""
    from .spool import fallback_spool_dir
    from .store_health import read_health

    fallback = fallback_spool_dir(config.storage_path, config.storage.fallback_spool_dir)
    health = read_health(config.storage_path, fallback)
    if health is not None and health.failing:
        print(f"llmtap: warning: the log is missing rows ({health.reason}); {health.rows_waiting:,} wait, "
              f"{health.rows_lost:,} lost. See `llmtap status`.", file=sys.stderr)


def cache_stats(config: Config, days: int) -> int:
    from .cache_store import CacheStore

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

        from .batch_writer import read_log

        try:
            _, totals = read_log(
                config.storage_path,
                "SELECT count(*) FILTER (WHERE cache_status = 'HIT'), count(*) FILTER (WHERE cache_status = 'MISS'),"
                " coalesce(sum(cost_saved_usd), 0) FROM requests WHERE created_at > now() - to_days(?)", [days])
            hits, misses, saved = totals[0]  # an aggregate: always one row
        except duckdb.Error as e:
            lines.append(f"last {days} days  unknown: {config.storage_path} cannot be read ({str(e).splitlines()[0]}); "
                         "starting the gateway once brings an old log up to date")
        else:
            rate = f"{100 * hits / (hits + misses):.1f}%" if hits + misses else "-"
            lines.append(f"last {days} days  {hits:,} hits, {misses:,} misses (hit rate {rate}), saved ${_text(saved)}")
    print("\n".join(lines))
    return 0


def cache_clear(config: Config, older_than_s: float | None) -> int:
    from .cache_store import CacheStore, CacheUnreadable, discard_unreadable

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


def ensure_ca(config: Config) -> tuple[Path, Path]:
    """Create the CA in `certs` if needed; return the CA file and a bundle of the public roots plus the CA."""
    import certifi
    from mitmproxy.certs import CertStore

    config.certs_dir.mkdir(parents=True, exist_ok=True)
    CertStore.from_store(config.certs_dir, "mitmproxy", 2048)
    ca = config.certs_dir / CA_CERT
    bundle = config.certs_dir / CA_BUNDLE
    bundle.write_text(Path(certifi.where()).read_text() + "\n# llmtap\n" + ca.read_text())
    return ca.resolve(), bundle.resolve()


def env_lines(config: Config) -> str:
    ca, bundle = ca_paths(config)
    lines = []
    if config.proxy_listen:
        proxy = f"http://{config.proxy_listen}"
        lines += [
            f"export HTTPS_PROXY={proxy}",
            f"export SSL_CERT_FILE={bundle}",
            f"export REQUESTS_CA_BUNDLE={bundle}",
            f"export NODE_EXTRA_CA_CERTS={ca}",
        ]
    if config.gateway_listen:
        lines.append(f"export OPENAI_BASE_URL=http://{config.gateway_listen}/v1")
    return "\n".join(lines)


def ca_paths(config: Config) -> tuple[Path, Path]:
    return (config.certs_dir / CA_CERT).resolve(), (config.certs_dir / CA_BUNDLE).resolve()


def start_gateway(config: Config, config_path: str | None, web: bool, extra: list[str]) -> int:
    from mitmproxy.tools import cmdline
    from mitmproxy.tools.main import run

    from .log_file import log_file_problem
    from .pipeline import install, mitmproxy_args

    if problem := log_file_problem(config.storage_path):  # before mitmproxy starts: at once, and the file untouched
        print(f"llmtap: cannot start: {problem}", file=sys.stderr)
        return 2
    ensure_ca(config)
    print(banner(config, web), flush=True)
    if web:
        from mitmproxy.tools.web.master import WebMaster  # imported only when used: it brings a web server

        master_cls: type = WebMaster
        make_parser = cmdline.mitmweb
    else:
        from mitmproxy.tools.dump import DumpMaster

        master_cls = DumpMaster
        make_parser = cmdline.mitmdump

    class LlmtapMaster(master_cls):  # type: ignore[valid-type,misc]
        def __init__(self, options, *a, **kw):
            super().__init__(options, *a, **kw)
            install(self)

    source = str(config.source) if config.source else None
    master = run(LlmtapMaster, make_parser, mitmproxy_args(config, source, web) + extra)
    store = getattr(master.addons.get("recorder"), "store", None)
    if store is not None and store.rows_lost:
        print(f"llmtap: {store.rows_lost:,} rows could not be kept anywhere (not in {store.path}, its spool or the "
              "fallback spool): exit status 1", file=sys.stderr)
        return 1
    return 0


def banner(config: Config, web: bool) -> str:
    ca, bundle = ca_paths(config)
    lines = ["llmtap is starting"]
    if config.proxy_listen:
        lines.append(f"  proxy        http://{config.proxy_listen}   (HTTPS_PROXY; no code change)")
    if config.gateway_listen:
        lines.append(f"  gateway      http://{config.gateway_listen}/v1   (base_url)")
    lines += [
        f"  CA           {ca}",
        f"  log          {config.storage_path.resolve()}",
        f"  config       {config.source or 'built-in defaults'}",
    ]
    if web:
        lines.append("  mitmweb      see the 'Web server listening at' line below")
    env_command = shlex.join(self_command() + ["env"] + (["--config", str(config.source)] if config.source else []))
    lines += ["", f"Point an app at it (or run: eval \"$({env_command})\"):",
              *("  " + line for line in env_lines(config).splitlines())]
    if config.gateway_listen:
        lines.append(f'  or in code:  OpenAI(base_url="http://{config.gateway_listen}/v1")')
    lines += ["", *keyless_provider_lines(config)]
    return "\n".join(lines)


def self_command() -> list[str]:
    """How to run this llmtap again from any directory: the installed script, or the module."""
    script = Path(sys.argv[0])
    if script.name == "llmtap" and script.exists():
        return [str(script.resolve())]
    return [sys.executable, "-m", "llmtap.cli"]


def run_sql(config: Config, query: str, output_format: str | None) -> int:
    import duckdb

    from .batch_writer import read_log

    if not config.storage_path.exists():
        print(f"llmtap: no log yet at {config.storage_path} (start the gateway and make a call)", file=sys.stderr)
        return 1
    try:
        columns, rows = read_log(config.storage_path, query)
    except duckdb.Error as e:
        print(f"llmtap: {e}", file=sys.stderr)
        return 1
    output_format = output_format or ("table" if sys.stdout.isatty() else "json")
    render_rows(columns, rows, output_format)
    return 0


def render_rows(columns: list[str], rows: list[tuple], output_format: str) -> None:
    """Rows as a rich table (terminals), JSON lines or CSV (pipes)."""
    if output_format == "json":
        for row in rows:
            print(json.dumps(dict(zip(columns, row, strict=True)), default=_plain))
    elif output_format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows([[_text(v) for v in row] for row in rows])
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table(*columns)
        for row in rows:
            table.add_row(*[_text(v) for v in row])
        Console().print(table)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"  # exact, without trailing zeros or exponent: 0.0000039, not 3.9e-06
    return str(_plain(value))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value if isinstance(value, (str, int, float, bool, list, dict)) else str(value)


if __name__ == "__main__":
    sys.exit(main())
