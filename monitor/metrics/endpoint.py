"""The daemon's metrics: its registry, the `Recorder` its parts report to, and the server.

Built when the daemon is (so the backlog, the gate, the client and the poller get the recorder
from the start), started once the database is open (the census reads it), closed at the stop.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry
from sqlalchemy import Engine

from monitor.config import Settings
from monitor.metrics.address import ListenAddress
from monitor.metrics.census import Census
from monitor.metrics.exposition import add_build_info
from monitor.metrics.recorder import Recorder
from monitor.metrics.server import MetricsServer


class Endpoint:
    def __init__(self, listen: ListenAddress) -> None:
        self.listen = listen
        self.registry = CollectorRegistry()
        self.recorder = Recorder(self.registry)
        add_build_info(self.registry)
        self.server: MetricsServer | None = None

    def start(self, engine: Engine, settings: Callable[[], Settings]) -> None:
        """Serve from now on; a ConfigError (exit 78) if the address cannot be listened on."""
        self.registry.register(Census(engine, settings))
        self.server = MetricsServer(self.listen, self.registry)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
