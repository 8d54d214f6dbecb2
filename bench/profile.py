"""`python -m bench.profile tick|list|history`: cProfile of a hot path, saved and summarised.

- `tick`: `Poller.tick` over 500 stuck tasks, 4 measured ticks, with the fetches run inline
  (one thread) so that the profile sees them; the simulator runs in its own process.
- `list`, `history`: `jtm list --json` on 10,000 tasks and `jtm history ID` on 1,000,000
  snapshot rows (the databases of the CLI figure).

Profiles go to bench-results/PROFILE.prof (open them with `python -m pstats` or snakeviz);
the top entries by cumulative time are printed. Wall-clock profiles: a tick's figures include
waiting for the simulator's answers (`recv_into`).
"""

from __future__ import annotations

import argparse
import pstats
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.figures.cli import build_database, task_id
from bench.harness import ROOT, SimProcess, child_env, run_child, stalled_script, write_config


def profile_tick(out: Path) -> None:
    with SimProcess() as sim, tempfile.TemporaryDirectory() as tmp:
        ids = [f"p{i}" for i in range(500)]
        sim.add_tasks(stalled_script(t) for t in ids)
        run_child(
            [
                *("cpu", "--mode", "daemon", "--sim", sim.url, "--db", f"{tmp}/tick.db"),
                *("--tasks", "500", "--prefix", "p", "--concurrency", "8", "--rounds", "4"),
                *("--profile", str(out)),
            ]
        )


def profile_cli(name: str, out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "cli.db"
        build_database(db, 10_000, 1_000_000)
        config = write_config(Path(tmp), "http://127.0.0.1:9", db, concurrency=8)
        args = ["list", "--json"] if name == "list" else ["history", task_id(5000)]
        profiled = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "monitor"]
        subprocess.run(
            [*profiled, "--config", str(config), *args],
            stdout=subprocess.DEVNULL,
            env=child_env(),
            check=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("what", choices=["tick", "list", "history"])
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    out = ROOT / "bench-results" / f"{args.what}.prof"
    out.parent.mkdir(exist_ok=True)
    if args.what == "tick":
        profile_tick(out)
    else:
        profile_cli(args.what, out)
    stats = pstats.Stats(str(out))
    stats.sort_stats("cumulative").print_stats(args.top)
    print(f"profile saved to {out}")


if __name__ == "__main__":
    main()
