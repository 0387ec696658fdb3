"""`llmtap dashboard`: the web dashboard over the log, without a gateway (one that runs serves its own)."""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from ..config import Config
from .options import ConfigProblem, config_option
from .reading import ReadFailed


@click.command()
@config_option()
def dashboard(config: Config) -> int:
    """Serve the web dashboard at listen.dashboard over a stopped gateway's log until Ctrl-C. A running gateway
    serves the same page itself, at the same address."""
    from ..dashboard.server import GATEWAY_RUNNING, DashboardServer
    from ..store_health import gateway_running

    if config.dashboard_listen is None:
        raise ConfigProblem("listen.dashboard is off: set it to an address such as 127.0.0.1:8790")
    if gateway_running(config.storage_path):
        raise ReadFailed(GATEWAY_RUNNING.format(log=config.storage_path))
    server = DashboardServer(config.storage_path, config.dashboard_listen, config.gateway_keys, in_gateway=False,
                             alert_rules=config.alert_rules)

    async def serve() -> None:
        try:
            server.start()
        except OSError as e:
            raise ReadFailed(f"cannot listen on {config.dashboard_listen} ({e.strerror or e}): is a gateway with "
                             f"this config running? It serves the dashboard at {server.url}") from None
        # "listening at HOST:PORT." as mitmproxy says it of its listeners, then where to point a browser
        print(f"llmtap dashboard listening at {config.dashboard_listen}. Open {server.url} (log "
              f"{config.storage_path}; Ctrl-C stops it)", flush=True)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopped.set)
        await stopped.wait()

    try:
        asyncio.run(serve())
    finally:
        server.stop()
    print("llmtap: dashboard stopped", file=sys.stderr)
    return 0
