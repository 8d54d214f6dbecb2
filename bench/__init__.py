"""The benchmark suite: what the monitor costs beyond the HTTP requests it must make.

`python -m bench` (or `make bench`) starts the bundled simulator in a process of its own and
measures eight figures, each beside a bare baseline taken in the same run:

1. `cpu`: CPU time per task poll of the daemon's code path vs a bare `requests` loop
2. `throughput`: polls achieved at a requested rate, and the ceiling vs the bare client's
3. `memory`: peak RSS of `jtm run` with 10,000 watched tasks
4. `storage`: rows and bytes per task-day, for a stuck task and for a moving one
5. `cli`: `jtm list --json` and `jtm history ID` on large databases vs starting Python
6. `registration`: 10,000 IDs through `jtm add -`
7. `metrics`: CPU per poll with the metrics endpoint scraped every second vs without
8. `instances`: three instances sharing tasks on PostgreSQL (skipped without a server)

Modules: `harness` (processes, /proc readings, the machine), `bare` (the baseline client),
`child` (the measured processes), `figures` (the measurements), `report` (JSON and
Markdown), `profile` (cProfile of the hot paths). Benchmarks are not tests: the test suite only
runs the smoke scale (`--smoke`) to keep them working, and asserts nothing about timings.
"""
