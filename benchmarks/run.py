"""Run every benchmark (benchmarks/bench_*.py) in turn; each prints its figures and the ratio to its baseline.

python3 tasks.py bench                 # all of them
.venv/bin/python benchmarks/run.py meltano sync   # only those whose name contains a word
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(filters: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    chosen = [s for s in scripts if not filters or any(f in s.stem for f in filters)]
    failures = []
    for script in chosen:
        print(f"\n=== {script.stem} ===", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failures.append(script.stem)
    if failures:
        print(f"\nfailed: {', '.join(failures)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
