"""Prometheus metrics: what the daemon counts, what the database says, and how both are served.

- `hooks`: the few calls the daemon's parts make where things happen (`Telemetry`), with a
  do-nothing default, free of the metrics library so that every module may import it.
- `address`: `[metrics] listen` parsed (`host:port`, `[v6]:port`, `unix:PATH`).
- `recorder`: `Recorder`, the `Telemetry` that keeps the counters in memory.
- `census`: the gauges read from the database at each scrape (one query).
- `exposition`: the registry of the daemon and of `jtm metrics`, and its rendering.
- `server`: the HTTP endpoint (`/metrics`) on TCP or a Unix socket.

Only `recorder`, `census`, `exposition` and `server` import `prometheus_client`, and only
`jtm run` and `jtm metrics` import them: other commands start without it.
"""
