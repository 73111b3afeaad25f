"""Run the benchmarks (benchmarks/bench_*.py) in turn, then write their figures into docs/performance.md.

Each benchmark prints its figures and the ratio to its baseline, and reports them to this runner through
`figures.emit` (a `BENCHMARK-RESULT {json}` line, and a JSON line in the file named by
`BENCHMARK_RESULT_FILE`). After the chosen benchmarks ran, the table between
`<!-- benchmark-figures:start -->` and `<!-- benchmark-figures:end -->` in docs/performance.md is
rewritten: rows of the benchmarks that reported are replaced (dated today, UTC), the others are kept.

python3 tasks.py bench                 # all of them
.venv/bin/python benchmarks/run.py meltano sync   # only those whose name contains a word
.venv/bin/python benchmarks/run.py --no-write definitions   # run without touching docs/performance.md
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import figures

HERE = Path(__file__).resolve().parent


def main(args: list[str], bench_dir: Path = HERE, doc: Path = figures.DOC) -> int:
    write = "--no-write" not in args
    filters = [a for a in args if a != "--no-write"]
    scripts = sorted(bench_dir.glob("bench_*.py"))
    chosen = [s for s in scripts if not filters or any(f in s.stem for f in filters)]
    failures, results = [], []
    measured = figures.today()
    with tempfile.TemporaryDirectory(prefix="benchmark_results_") as scratch:
        for script in chosen:
            print(f"\n=== {script.stem} ===", flush=True)
            result_file = Path(scratch) / f"{script.stem}.jsonl"
            env = {**os.environ, figures.RESULT_FILE_ENV: str(result_file)}
            if subprocess.run([sys.executable, str(script)], env=env).returncode != 0:
                failures.append(script.stem)
            if result_file.exists():
                results += figures.read_results(result_file.read_text().splitlines(), measured)
            else:
                print(f"{script.stem} reported no figures; its rows in {doc.name} stay as they were")
    if write and results:
        figures.update_document(results, doc)
        reported = sorted({f.benchmark for f in results})
        print(f"\nwrote {len(results)} figure(s) of {', '.join(reported)} into {doc}")
    if failures:
        print(f"\nfailed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
