"""Running the gateway and pointing apps at it: `llmtap start`, `llmtap env`, `llmtap status`."""

from __future__ import annotations

import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import click

from ..config import Config
from ..locations import LOOKUP_ORDER, record_running_gateway
from ..provider_keys import keyless_provider_lines
from .options import config_option

CA_BASENAME = "mitmproxy"  # mitmproxy's own name for its CA's files in its confdir
CA_KEY = f"{CA_BASENAME}-ca.pem"  # its key and certificate
CA_CERT = f"{CA_BASENAME}-ca-cert.pem"
CA_BUNDLE = "llmtap-ca-bundle.pem"


@click.command(context_settings={"ignore_unknown_options": True}, epilog=LOOKUP_ORDER)
@config_option(for_start=True)
@click.option("--web", is_flag=True, help="run mitmweb (live inspection) instead of mitmdump")
@click.argument("mitmproxy_args", nargs=-1, type=click.UNPROCESSED)
def start(config: Config, web: bool, mitmproxy_args: tuple[str, ...]) -> int:
    """Run the gateway in the foreground. After `--`: more mitmdump/mitmweb arguments."""
    return start_gateway(config, web, [a for a in mitmproxy_args if a != "--"])


@click.command(epilog=LOOKUP_ORDER)
@config_option()
@click.option("--gateway", "gateway_way", is_flag=True,
              help="print the gateway way in's lines instead: OPENAI_BASE_URL, ANTHROPIC_BASE_URL")
def env(config: Config, gateway_way: bool) -> int:
    """Print the export lines of the proxy way in: HTTPS_PROXY and the CA (apps keep their own base URLs and keys)."""
    ensure_ca(config)
    print(gateway_env_lines(config) if gateway_way else env_lines(config))
    return 0


@click.command()
@config_option()
@click.option("--json", "as_json", is_flag=True, help="the health record as JSON")
def status(config: Config, as_json: bool) -> int:
    """Is every call reaching the log? (exit status 1 when not)"""
    return storage_status(config, as_json)


def ensure_ca(config: Config) -> tuple[Path, Path]:
    """Create the CA in `certs` if needed; return the CA file and a bundle of the public roots plus the CA."""
    import certifi
    from mitmproxy.certs import CertStore

    config.certs_dir.mkdir(parents=True, exist_ok=True)
    # Created when missing, as mitmproxy's `CertStore.from_store` would, but an existing CA is not loaded here: that
    # (~60 ms, the key's checks) is done by mitmproxy itself, which reads and checks it when the gateway starts.
    if not (config.certs_dir / CA_KEY).exists():
        CertStore.create_store(config.certs_dir, CA_BASENAME, 2048)
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
    from ..heap import hold_collections, keep_imported

    hold_collections()  # until the gateway runs (heap.py): a start-up collected as it grows is ~0.6 s slower
    from mitmproxy.tools import cmdline
    from mitmproxy.tools.main import run

    from ..log_file import log_file_problem
    from ..pipeline import install, mitmproxy_args
    from ..quick_dispatch import use_quick_dispatch
    from ..recorder import Recorder

    if web:
        from mitmproxy.tools.web.master import WebMaster  # imported only when used: it brings a web server

        master_cls: type = WebMaster
        make_parser = cmdline.mitmweb
    else:
        from mitmproxy.tools.dump import DumpMaster

        master_cls = DumpMaster
        make_parser = cmdline.mitmdump
    keep_imported()

    if problem := log_file_problem(config.storage_path):  # before mitmproxy starts: at once, and the file untouched
        print(f"llmtap: cannot start: {problem}", file=sys.stderr)
        return 2
    ensure_ca(config)
    print(banner(config, web), flush=True)

    source = str(config.source) if config.source else None

    class LlmtapMaster(master_cls):  # type: ignore[valid-type,misc]
        def __init__(self, options, *a, **kw):
            super().__init__(options, *a, **kw)
            use_quick_dispatch(self)  # each event only to the addons that take it: half of mitmproxy's CPU per call
            install(self, source or "")

    record = record_running_gateway(config.source)  # how `llmtap env`, `sql`, ... run elsewhere find this config
    try:
        master = run(LlmtapMaster, make_parser, mitmproxy_args(config, source, web, extra))
    finally:
        record.unlink(missing_ok=True)
    group = master.addons.get("llmtap")  # pipeline.install's AddonGroup, by its name
    recorder = group.find(Recorder) if group is not None else None
    store = recorder.store if recorder is not None else None
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
    if config.dashboard_listen:
        lines.append(f"  dashboard        {config.dashboard_listen.http_url}")
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


def storage_status(config: Config, as_json: bool) -> int:
    """Print whether rows are reaching the log; 1 when storage is failing or rows were lost, else 0."""
    from ..spool import fallback_spool_dir, spool_dir
    from ..store_health import STALE_AFTER_S, age_s, gateway_running, read_health

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
