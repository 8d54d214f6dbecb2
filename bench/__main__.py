"""`python -m bench [--smoke] [--only FIGURE ...]`: run the figures, print each as measured,
then write the JSON results and the table of docs/benchmarks.md.

A full run of every figure writes `bench/results.json` and updates docs/benchmarks.md; a
smoke run (what the test suite runs) or a run of some figures (`--only`) writes only under
`bench-results/` unless told otherwise.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import FIGURES
from bench.harness import ROOT, SimProcess, machine
from bench.report import Result, markdown_table, save_json, update_markdown
from bench.scale import FULL, SMOKE


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the suite runs")
    parser.add_argument(
        "--only", action="append", choices=sorted(FIGURES), help="run only this figure (repeatable)"
    )
    parser.add_argument("--json", type=Path, help="results file (default by scale)")
    parser.add_argument(
        "--markdown", type=Path, help="update the table in this file (default by scale)"
    )
    args = parser.parse_args(argv)
    scale = SMOKE if args.smoke else FULL
    # A partial or smoke run must not overwrite the committed results of a full one.
    scratch = args.smoke or bool(args.only)
    tag = scale.name if not args.only else f"{scale.name}-{'-'.join(args.only)}"
    json_path = args.json or (
        ROOT / "bench-results" / f"{tag}.json" if scratch else ROOT / "bench" / "results.json"
    )
    markdown = args.markdown or (None if scratch else ROOT / "docs" / "benchmarks.md")
    names = args.only or list(FIGURES)
    info = machine()
    print(
        f"bench: scale {scale.name}; {info['nproc']} CPUs ({info['cpu_model']}); "
        f"Python {info['python']}",
        flush=True,
    )
    results: list[Result] = []
    started = time.monotonic()
    with SimProcess() as sim, tempfile.TemporaryDirectory(prefix="jtm-bench-") as tmp:
        for name in names:
            figure_started = time.monotonic()
            workdir = Path(tmp) / name
            workdir.mkdir()
            for result in FIGURES[name](scale, sim, workdir):
                results.append(result)
                print(f"  {result.line()}", flush=True)
            print(f"  ({name}: {time.monotonic() - figure_started:.0f} s)", flush=True)
    save_json(json_path, info, tag, results)
    if markdown is not None:
        update_markdown(markdown, markdown_table(info, scale.name, results))
    verdicts = [r for r in results if r.holds is not None]
    held = [r for r in verdicts if r.holds]
    print(f"bench: {len(held)} of {len(verdicts)} goals hold; results in {json_path}")
    for result in verdicts:
        if not result.holds:
            print(f"  missed: {result.title} (goal {result.goal})")
    print(f"bench: {time.monotonic() - started:.0f} s in all", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
