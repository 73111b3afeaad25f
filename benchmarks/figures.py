"""Benchmark figures: what each bench_*.py reports to the runner, and the table in docs/performance.md.

A benchmark calls `emit(...)` once per figure. That prints a machine-readable line
`BENCHMARK-RESULT {json}` after its human-readable output and, when the runner set
`BENCHMARK_RESULT_FILE`, appends the same JSON object to that file (one per line).

The runner (benchmarks/run.py) collects the results of the benchmarks it ran and calls
`update_document`, which rewrites only the table between the markers: rows of the benchmarks that
reported figures are replaced, rows of the others are kept as they were.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

RESULT_PREFIX = "BENCHMARK-RESULT "
RESULT_FILE_ENV = "BENCHMARK_RESULT_FILE"
START_MARKER = "<!-- benchmark-figures:start -->"
END_MARKER = "<!-- benchmark-figures:end -->"
DOC = Path(__file__).resolve().parent.parent / "docs" / "performance.md"
HEADER = ("Benchmark", "Figure", "Platform", "Baseline", "Ratio", "Target", "Measured")


@dataclass(frozen=True)
class Figure:
    """One row of the table. `benchmark` is the script's stem (bench_meltano); `what` names the figure."""

    benchmark: str
    what: str
    platform: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    measured: str = ""

    def cells(self) -> tuple[str, ...]:
        return (
            f"`{self.benchmark}.py`",
            self.what,
            self.platform,
            self.baseline,
            self.ratio,
            self.target,
            self.measured,
        )


def emit(
    benchmark: str,
    what: str,
    platform: str,
    baseline: str = "—",
    ratio: float | None = None,
    target: str = "—",
) -> Figure:
    """Report one figure of a benchmark to the runner (and print it as a machine-readable line)."""
    figure = Figure(
        benchmark=Path(benchmark).stem,
        what=what,
        platform=platform,
        baseline=baseline,
        ratio="—" if ratio is None else f"{ratio:.2f}x",
        target=target,
    )
    payload = json.dumps({k: v for k, v in asdict(figure).items() if k != "measured"}, ensure_ascii=False)
    print(RESULT_PREFIX + payload, flush=True)
    result_file = os.environ.get(RESULT_FILE_ENV)
    if result_file:
        with open(result_file, "a", encoding="utf-8") as out:
            out.write(payload + "\n")
    return figure


def read_results(lines: Iterable[str], measured: str) -> list[Figure]:
    """Figures from JSON lines (a result file) or `BENCHMARK-RESULT` lines (captured output)."""
    figures = []
    for line in lines:
        line = line.strip()
        if line.startswith(RESULT_PREFIX):
            line = line[len(RESULT_PREFIX) :]
        if not line.startswith("{"):
            continue
        data = json.loads(line)
        figures.append(Figure(**{**data, "measured": measured}))
    return figures


def _escape(cell: str) -> str:
    return cell.replace("|", r"\|").replace("\n", " ")


def _split_row(line: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
    return [cell.strip().replace(r"\|", "|") for cell in cells]


def render_table(figures: Iterable[Figure]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    lines += ["| " + " | ".join(_escape(cell) for cell in figure.cells()) + " |" for figure in figures]
    return "\n".join(lines)


def parse_table(block: str) -> list[Figure]:
    """The figures of a table written by `render_table` (header and separator skipped)."""
    figures = []
    for line in block.splitlines():
        if not line.strip().startswith("|"):
            continue
        cells = _split_row(line)
        if tuple(cells) == HEADER or set("".join(cells)) <= set("-: "):
            continue
        if len(cells) != len(HEADER):
            raise ValueError(f"benchmark table row has {len(cells)} cells, expected {len(HEADER)}: {line}")
        benchmark = cells[0].strip("`").removesuffix(".py")
        figures.append(Figure(benchmark, *cells[1:]))
    return figures


def merge(existing: list[Figure], new: list[Figure]) -> list[Figure]:
    """Rows of the benchmarks with new figures are replaced by those (in their old place); the others stay."""
    ran = {figure.benchmark for figure in new}
    merged: list[Figure] = []
    placed: set[str] = set()
    for figure in existing:
        if figure.benchmark not in ran:
            merged.append(figure)
        elif figure.benchmark not in placed:
            merged += [f for f in new if f.benchmark == figure.benchmark]
            placed.add(figure.benchmark)
    merged += [f for f in new if f.benchmark not in placed]
    return merged


def update_text(text: str, new: list[Figure]) -> str:
    """`text` with the table between the markers rewritten; everything outside the markers is untouched."""
    start = text.find(START_MARKER)
    end = text.find(END_MARKER)
    if start < 0 or end < start:
        raise ValueError(f"the document has no {START_MARKER} … {END_MARKER} block")
    body_start = start + len(START_MARKER)
    figures = merge(parse_table(text[body_start:end]), new)
    return text[:body_start] + "\n" + render_table(figures) + "\n" + text[end:]


def update_document(new: list[Figure], doc: Path = DOC) -> None:
    doc.write_text(update_text(doc.read_text(encoding="utf-8"), new), encoding="utf-8")


def today() -> str:
    return dt.datetime.now(dt.UTC).date().isoformat()
