"""The `Alerts` addon: the alert engine and alert delivery, running beside the gateway while it runs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from ..settings import Settings
from .delivery import Delivery
from .engine import AlertEngine

# At shutdown, how long notices already handed to delivery may still take; what is left is recorded as failed.
DELIVERY_WAIT_S = 5.0


class Alerts:
    """Checks the config's alert rules over the log while the gateway runs (`AlertEngine`, in its own thread) and
    delivers their notices off the event loop (`Delivery`). It sees no flow: a call never waits for an alert. Nothing
    runs when no rule has channels (a budget that only blocks is the `Budgets` addon's)."""

    def __init__(self, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)):
        self.settings = settings
        self.clock = clock
        self.engine: AlertEngine | None = None
        self.delivery: Delivery | None = None

    def running(self) -> None:
        config = self.settings.config
        if self.engine is not None or not any(rule.channels for rule in config.alert_rules):
            return
        self.delivery = Delivery(config.storage_path, config.smtp, config.alerting)
        self.delivery.start()
        self.engine = AlertEngine(config.storage_path, config.alert_rules, self.delivery,
                                  config.alerting.check_interval_s, self.clock)
        self.engine.start()

    def done(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None
        if self.delivery is not None:
            self.delivery.close(DELIVERY_WAIT_S)
            self.delivery = None
