"""The `Dashboard` addon: the web dashboard served from the gateway's own process, beside the two ways in."""

from __future__ import annotations

import logging

from ..settings import Settings
from .server import DashboardServer

logger = logging.getLogger(__name__)


class Dashboard:
    """Serves the dashboard at `listen.dashboard` while the gateway runs (nothing when it is off). An address it
    cannot have (taken by another process) is one ERROR line at start-up, which mitmproxy turns into an exit before
    any call is taken, as it does for its own listeners: a gateway never runs without the page it said it serves."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.server: DashboardServer | None = None

    def running(self) -> None:
        config = self.settings.config
        if config.dashboard_listen is None or self.server is not None:
            return
        server = DashboardServer(config.storage_path, config.dashboard_listen, config.gateway_keys, in_gateway=True,
                                 alert_rules=config.alert_rules)
        try:
            server.start()
        except OSError as e:
            logger.error("llmtap: the dashboard cannot listen on %s (%s). Set listen.dashboard to another address, "
                         "or off.", config.dashboard_listen, e.strerror or e)
            server.stop()
            return
        self.server = server

    def done(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
