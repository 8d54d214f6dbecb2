"""Results: one `Result` per figure line, printed as measured, then saved as JSON and as the
table between the markers of docs/benchmarks.md (the prose around it is kept)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BEGIN = "<!-- bench:results:begin -->"
END = "<!-- bench:results:end -->"


@dataclass(slots=True)
class Result:
    """One figure: `value` beside `baseline` (same unit), their `ratio`, and the goal."""

    key: str
    title: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    goal: str = ""
    holds: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        """`value` / `baseline`; None without a baseline."""
        return None if self.baseline is None else ratio(self.value, self.baseline)

    def line(self) -> str:
        text = f"{self.title}: {_num(self.value)} {self.unit}"
        if self.baseline is not None:
            text += f" vs {self.baseline_label} {_num(self.baseline)} {self.unit}"
        if self.ratio is not None:
            text += f" = {_ratio(self.ratio)}"
        if self.goal:
            verdict = {True: "holds", False: "MISSED", None: "n/a"}[self.holds]
            text += f"  [goal {self.goal}: {verdict}]"
        return text


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline else math.inf


def _ratio(value: float) -> str:
    return f"{value:.2f}x" if value >= 0.1 else f"{value:.2g}x"


def _num(value: float) -> str:
    if math.isnan(value) or math.isinf(value):
        return str(value)
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def save_json(path: Path, machine: dict[str, Any], scale: str, results: list[Result]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "scale": scale,
        "machine": machine,
        "results": [asdict(r) | {"ratio": r.ratio} for r in results],
    }
    path.write_text(json.dumps(document, indent=2, default=str) + "\n")


def markdown_table(machine: dict[str, Any], scale: str, results: list[Result]) -> str:
    lines = [
        f"Measured with `python -m bench` (scale `{scale}`) on {machine['nproc']} CPUs "
        f"({machine['cpu_model']}), {machine['memory_mb']:,} MiB RAM, Python "
        f"{machine['python']}, SQLite {machine['sqlite']}, SQLAlchemy "
        f"{machine['packages'].get('sqlalchemy', '?')}, requests "
        f"{machine['packages'].get('requests', '?')}, Linux {machine['kernel']}; load average "
        f"{machine.get('load_average_at_start', ['?'])[0]} at the start (a shared machine).",
        "",
        "| figure | jtm | baseline | ratio | goal | holds |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in results:
        baseline = f"{_num(r.baseline)} {r.unit} ({r.baseline_label})" if r.baseline else "-"
        shown_ratio = _ratio(r.ratio) if r.ratio is not None else "-"
        holds = {True: "yes", False: "**no**", None: "-"}[r.holds]
        lines.append(
            f"| {r.title} | {_num(r.value)} {r.unit} | {baseline} | {shown_ratio} "
            f"| {r.goal or '-'} | {holds} |"
        )
    return "\n".join(lines)


def update_markdown(path: Path, table: str) -> None:
    """Replace the text between the markers (or append the markers and the table)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{BEGIN}\n{table}\n{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def result_from_json(data: dict[str, Any]) -> Result:
    """A saved result; its `ratio` is derived again from `value` and `baseline`."""
    return Result(**{k: v for k, v in data.items() if k != "ratio"})


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.report RESULTS.json MARKDOWN.md`: redraw the table from saved results."""
    import sys

    source, target = (argv if argv is not None else sys.argv[1:])[:2]
    document = json.loads(Path(source).read_text())
    results = [result_from_json(r) for r in document["results"]]
    update_markdown(Path(target), markdown_table(document["machine"], document["scale"], results))


if __name__ == "__main__":
    main()
