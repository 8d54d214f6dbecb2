"""What `jtm metrics` prints, the build info both it and the daemon show, and the rendering.

`jtm metrics` has no counters to show (they live in the daemon's
memory): it prints the database's gauges, the build info and the last tick time from the
daemon's heartbeat row, the same names with the same meaning, for node_exporter's textfile
collector.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import prometheus_client
from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func, select

from monitor import __version__
from monitor.config import Settings
from monitor.database import SCHEMA_HEAD, transaction
from monitor.errors import MonitorError
from monitor.metrics.census import Census
from monitor.schema import HEARTBEATS


def add_build_info(registry: CollectorRegistry) -> None:
    info = Gauge(
        "jtm_build_info",
        "Always 1: the running version and the database schema revision it uses.",
        ["version", "schema"],
        registry=registry,
    )
    info.labels(__version__, SCHEMA_HEAD).set(1)


class LastTick(Collector):
    """`jtm_last_tick_timestamp_seconds` from the heartbeat rows (the newest tick of any
    daemon on the database), for `jtm metrics`; absent when no daemon ever ticked."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[Metric]:
        try:
            with transaction(self.engine) as conn:
                last: datetime | None = conn.scalar(select(func.max(HEARTBEATS.c.last_tick_at)))
        except MonitorError:
            return
        if last is not None:
            yield GaugeMetricFamily(
                "jtm_last_tick_timestamp_seconds",
                "When the last tick completed (Unix time).",
                value=last.timestamp(),
            )


def database_registry(engine: Engine, settings: Settings) -> CollectorRegistry:
    """What `jtm metrics` prints: what the database knows."""
    registry = CollectorRegistry()
    registry.register(Census(engine, lambda: settings))
    registry.register(LastTick(engine))
    add_build_info(registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format (0.0.4) of `registry`."""
    return prometheus_client.generate_latest(registry)


def write_atomically(path: str, registry: CollectorRegistry) -> None:
    """Write the text format to `path` through a temporary file renamed over it, so that a
    reader (node_exporter) never sees half a file. An OSError becomes a one-line error."""
    try:
        prometheus_client.write_to_textfile(path, registry)
    except OSError as exc:
        raise MonitorError(f"cannot write {path}: {exc.strerror or exc}") from None
