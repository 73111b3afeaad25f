"""The benchmark runner's table writer: docs/performance.md is rewritten between its markers only."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load(name: str):
    """A module of benchmarks/ under its own name, as the runner and the bench scripts import it."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


figures = load("figures")
runner = load("run")

DOC = """# Performance

Prose before the table, with a | pipe and numbers 1.2x.

<!-- benchmark-figures:start -->
| Benchmark | Figure | Platform | Baseline | Ratio | Target | Measured |
|---|---|---|---|---|---|---|
| `bench_meltano.py` | Meltano asset | 17.0 s | 16.9 s | 1.01x | ≤ 1.10x | 2026-11 |
| `bench_definitions_load.py` | load (a) | 0.05 s | plain \\| 0.04 s | 1.09x | ≤ 1.2x | 2026-11 |
| `bench_definitions_load.py` | load (b) | 2.8 s | 2.6 s | 1.05x | ≤ 1.2x | 2026-11 |
<!-- benchmark-figures:end -->

Prose after the table.
"""


def fake_results(*rows: dict) -> list:
    lines = ["human-readable output", *(figures.RESULT_PREFIX + json.dumps(row) for row in rows)]
    return figures.read_results(lines, measured="2026-12-01")


def test_rows_of_the_benchmarks_that_ran_are_replaced_and_the_others_kept(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(DOC)
    new = fake_results(
        {
            "benchmark": "bench_definitions_load",
            "what": "load (a), again",
            "platform": "0.06 s",
            "baseline": "0.05 s",
            "ratio": "1.20x",
            "target": "≤ 1.2x",
        },
        {"benchmark": "bench_new", "what": "a new one", "platform": "1 s"},
    )

    figures.update_document(new, doc)

    text = doc.read_text()
    before, _, rest = DOC.partition(figures.START_MARKER)
    _, _, after = rest.partition(figures.END_MARKER)
    assert text.startswith(before + figures.START_MARKER)
    assert text.endswith(figures.END_MARKER + after)
    table = text[len(before + figures.START_MARKER) : -len(figures.END_MARKER + after)]
    rows = figures.parse_table(table)
    assert [(r.benchmark, r.what, r.measured) for r in rows] == [
        ("bench_meltano", "Meltano asset", "2026-11"),
        ("bench_definitions_load", "load (a), again", "2026-12-01"),
        ("bench_new", "a new one", "2026-12-01"),
    ]
    assert rows[1].ratio == "1.20x"
    assert rows[2].baseline == "—"


def test_a_cell_with_a_pipe_survives_a_rewrite():
    once = figures.update_text(
        DOC, fake_results({"benchmark": "bench_meltano", "what": "m", "platform": "1 s"})
    )
    kept = [r for r in figures.parse_table(once) if r.what == "load (a)"]
    assert kept[0].baseline == "plain | 0.04 s"
    assert figures.update_text(once, []) == once


def test_emit_prints_a_result_line_and_appends_to_the_runner_file(tmp_path, monkeypatch, capsys):
    result_file = tmp_path / "results.jsonl"
    monkeypatch.setenv(figures.RESULT_FILE_ENV, str(result_file))
    figures.emit("/x/benchmarks/bench_meltano.py", "asset", platform="17.0 s", baseline="16.9 s", ratio=1.006)

    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith(figures.RESULT_PREFIX)
    (figure,) = figures.read_results(result_file.read_text().splitlines(), measured="today")
    assert (figure.benchmark, figure.ratio, figure.measured) == ("bench_meltano", "1.01x", "today")


def test_a_document_without_markers_is_refused():
    with pytest.raises(ValueError, match="benchmark-figures:start"):
        figures.update_text("# no table here\n", [])


def test_the_performance_page_has_the_generated_table():
    rows = figures.parse_table(
        (ROOT / "docs" / "performance.md")
        .read_text()
        .split(figures.START_MARKER)[1]
        .split(figures.END_MARKER)[0]
    )
    benchmarks = {path.stem for path in (ROOT / "benchmarks").glob("bench_*.py")}
    assert {row.benchmark for row in rows} == benchmarks


def test_the_runner_writes_what_a_benchmark_script_reports(tmp_path):
    doc = tmp_path / "performance.md"
    doc.write_text(DOC)
    bench_dir = tmp_path / "benchmarks"
    bench_dir.mkdir()
    (bench_dir / "figures.py").write_text((ROOT / "benchmarks" / "figures.py").read_text())
    (bench_dir / "bench_meltano.py").write_text(
        "from figures import emit\n"
        "print('human-readable figures')\n"
        "emit(__file__, 'fake meltano', platform='9.0 s', baseline='10.0 s', ratio=0.9, target='<= 1.10x')\n"
    )
    (bench_dir / "bench_broken.py").write_text("raise SystemExit(3)\n")

    assert runner.main(["meltano"], bench_dir=bench_dir, doc=doc) == 0
    rows = {r.benchmark: r for r in figures.parse_table(doc.read_text())}
    assert (rows["bench_meltano"].what, rows["bench_meltano"].ratio) == ("fake meltano", "0.90x")
    assert rows["bench_meltano"].measured == figures.today()
    assert rows["bench_definitions_load"].measured == "2026-11"

    before = doc.read_text()
    assert runner.main(["broken"], bench_dir=bench_dir, doc=doc) == 1
    assert doc.read_text() == before  # a benchmark that reported nothing leaves the table alone
