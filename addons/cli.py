"""The `llmtap` command: start the gateway, print the shell lines that point apps at it, and query the log."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from .config import Config, ConfigError, load_config
from .locations import LOOKUP_ORDER, find_config, record_running_gateway
from .money import format_usd
from .provider_keys import keyless_provider_lines
from .render import render_rows

CA_CERT = "mitmproxy-ca-cert.pem"
CA_BUNDLE = "llmtap-ca-bundle.pem"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llmtap", description="A self-hosted AI gateway for LLM observability.",
                                     epilog=LOOKUP_ORDER)
    commands = parser.add_subparsers(dest="command", required=True)
    config_help = "YAML config (default: see `llmtap --help`)"

    start = commands.add_parser("start", help="run the gateway in the foreground", epilog=LOOKUP_ORDER)
    start.add_argument("--config", help=config_help)
    start.add_argument("--web", action="store_true", help="run mitmweb (live inspection) instead of mitmdump")
    start.add_argument("mitmproxy_args", nargs=argparse.REMAINDER, help="after --: more mitmdump/mitmweb arguments")

    env = commands.add_parser("env", epilog=LOOKUP_ORDER, help="print the export lines of the proxy way in: "
                              "HTTPS_PROXY and the CA (apps keep their own base URLs and keys)")
    env.add_argument("--config", help=config_help)
    env.add_argument("--gateway", action="store_true",
                     help="print the gateway way in's lines instead: OPENAI_BASE_URL, ANTHROPIC_BASE_URL")

    sql = commands.add_parser("sql", help="run a SQL query over the log (works while the gateway runs)")
    sql.add_argument("query")
    sql.add_argument("--config", help=config_help)
    sql.add_argument("--format", choices=["table", "json", "csv"], help="default: table on a terminal, else json")

    cache_parser = commands.add_parser("cache", help="the response cache: stats, clear")
    cache_commands = cache_parser.add_subparsers(dest="cache_command", required=True)
    stats_parser = cache_commands.add_parser("stats", help="what the cache holds, and what it saved")
    stats_parser.add_argument("--config", help=config_help)
    stats_parser.add_argument("--days", type=int, default=7, help="hits and savings over the last N days (default 7)")
    clear_parser = cache_commands.add_parser("clear", help="remove cached answers")
    clear_parser.add_argument("--config", help=config_help)
    clear_parser.add_argument("--older-than", type=duration_s, metavar="AGE",
                             help="only answers stored longer ago than AGE: 90s, 30m, 12h, 7d")

    status = commands.add_parser("status", help="is every call reaching the log? (exit status 1 when not)")
    status.add_argument("--config", help=config_help)
    status.add_argument("--json", action="store_true", help="the health record as JSON")

    args = parser.parse_args(argv)
    choice = find_config(args.config, for_start=args.command == "start")
    if choice.implicit:  # on stderr, so `eval "$(llmtap env)"` still reads only export lines
        print(f"llmtap: config {choice.path or 'built-in defaults'} ({choice.why})", file=sys.stderr)
    try:
        config = load_config(choice.path)
    except ConfigError as e:
        print(f"llmtap: config error: {e}", file=sys.stderr)
        return 2
    if args.command == "start":
        return start_gateway(config, args.web, [a for a in args.mitmproxy_args if a != "--"])
    if args.command == "env":
        ensure_ca(config)
        print(gateway_env_lines(config) if args.gateway else env_lines(config))
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
            lines.append(f"last {days} days  {hits:,} hits, {misses:,} misses (hit rate {rate}), "
                         f"saved {format_usd(saved)}")
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
    partial = bundle.with_name(f"{bundle.name}.{os.getpid()}.tmp")
    partial.write_text(Path(certifi.where()).read_text() + "\n# llmtap\n" + ca.read_text())
    partial.replace(bundle)  # an app starting now reads the old bundle or the new one, never half of one
    return ca.resolve(), bundle.resolve()


def env_lines(config: Config) -> str:
    """The proxy way in: the proxy and the CA, nothing else. An app keeps its own base URL and its own key (a base URL
    here would send it to the gateway way in instead, where llmtap's keys may replace its own)."""
    if not config.proxy_listen:
        return "# the proxy way in is off (listen.proxy); `llmtap env --gateway` prints the gateway way in's lines"
    ca, bundle = ca_paths(config)
    return "\n".join([
        f"export HTTPS_PROXY=http://{config.proxy_listen}",
        f"export SSL_CERT_FILE={bundle}",
        f"export REQUESTS_CA_BUNDLE={bundle}",
        f"export NODE_EXTRA_CA_CERTS={ca}",
    ])


def gateway_env_lines(config: Config) -> str:
    """The gateway way in, for SDKs that read their base URL from the environment; labelled, since it reroutes the
    app to the gateway, which calls the provider with llmtap's own keys when it has them."""
    if not config.gateway_listen:
        return "# the gateway way in is off (listen.gateway); `llmtap env` prints the proxy way in's lines"
    return "\n".join([
        "# the gateway way in: calls go to llmtap's gateway, which adds the provider keys from its own environment",
        f"export OPENAI_BASE_URL={gateway_url(config)}/v1",
        f"export ANTHROPIC_BASE_URL={gateway_url(config)}",
    ])


def gateway_url(config: Config) -> str:
    return f"http://{config.gateway_listen}"


def ca_paths(config: Config) -> tuple[Path, Path]:
    return (config.certs_dir / CA_CERT).resolve(), (config.certs_dir / CA_BUNDLE).resolve()


def start_gateway(config: Config, web: bool, extra: list[str]) -> int:
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

    source = str(config.source) if config.source else None

    class LlmtapMaster(master_cls):  # type: ignore[valid-type,misc]
        def __init__(self, options, *a, **kw):
            super().__init__(options, *a, **kw)
            install(self, source or "")

    record = record_running_gateway(config.source)  # how `llmtap env`, `sql`, ... run elsewhere find this config
    try:
        master = run(LlmtapMaster, make_parser, mitmproxy_args(config, source, web, extra))
    finally:
        record.unlink(missing_ok=True)
    store = getattr(master.addons.get("recorder"), "store", None)
    if store is not None and store.rows_lost:
        print(f"llmtap: {store.rows_lost:,} rows could not be kept anywhere (not in {store.path}, its spool or the "
              "fallback spool): exit status 1", file=sys.stderr)
        return 1
    return 0


def banner(config: Config, web: bool) -> str:
    """What runs where, in absolute paths, and the lines that point an app at each way in; every command in it works
    from any directory."""
    ca, _ = ca_paths(config)
    lines = ["llmtap is starting"]
    if config.proxy_listen:
        lines.append(f"  proxy way in     http://{config.proxy_listen}   (HTTPS_PROXY: no code change, the app keeps "
                     "its own keys)")
    if config.gateway_listen:
        lines.append(f"  gateway way in   {gateway_url(config)}/v1   (base_url: llmtap adds the provider keys)")
    lines += [
        f"  CA               {ca}",
        f"  log              {config.storage_path}",
        f"  config           {config.source or 'built-in defaults'}",
    ]
    if web:
        lines.append("  mitmweb          see the 'Web server listening at' line below")
    config_args = ["--config", str(config.source)] if config.source else []
    if config.proxy_listen:
        env_command = shlex.join(self_command() + ["env"] + config_args)
        lines += ["", "Proxy way in: in the app's shell, from any directory, run",
                  f'  eval "$({env_command})"', "which sets",
                  *("  " + line for line in env_lines(config).splitlines())]
    if config.gateway_listen:
        env_command = shlex.join(self_command() + ["env", "--gateway"] + config_args)
        lines += ["", "Gateway way in: in code",
                  f'  OpenAI(base_url="{gateway_url(config)}/v1")   Anthropic(base_url="{gateway_url(config)}")',
                  f"or in the app's shell: eval \"$({env_command})\""]
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

    from .batch_writer import read_log_typed
    from .log_file import log_file_problem

    if not config.storage_path.exists():
        print(f"llmtap: no log yet at {config.storage_path} (start the gateway and make a call)", file=sys.stderr)
        return 1
    try:
        columns, types, rows = read_log_typed(config.storage_path, query)
    except duckdb.IOException as e:  # the file itself, not the query: say what to do, as start-up would
        print(f"llmtap: {log_file_problem(config.storage_path) or e}", file=sys.stderr)
        return 1
    except duckdb.Error as e:
        print(f"llmtap: {e}", file=sys.stderr)
        return 1
    output_format = output_format or ("table" if sys.stdout.isatty() else "json")
    render_rows(columns, rows, output_format, types)
    return 0


if __name__ == "__main__":
    sys.exit(main())
