"""Run every ``benchmarks/bench_*.py`` in turn; each prints its own table (``make bench``).

Usage: ``.venv/bin/python benchmarks/run.py [NAME ...]`` runs all benchmarks, or
only those whose file name contains one of the NAMEs (``run.py engine``).
Exits non-zero when a benchmark fails, after running the others.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    scripts = sorted(HERE.glob("bench_*.py"))
    if argv:
        scripts = [s for s in scripts if any(name in s.name for name in argv)]
        if not scripts:
            print(
                f"no benchmark matches {argv}; the benchmarks are "
                + ", ".join(s.name for s in sorted(HERE.glob("bench_*.py")))
            )
            return 2
    failed = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        start = time.perf_counter()
        result = subprocess.run([sys.executable, str(script)], check=False)
        took = time.perf_counter() - start
        status = "ok" if result.returncode == 0 else f"FAILED (exit {result.returncode})"
        print(f"=== {script.name}: {status} in {took:.0f} s ===", flush=True)
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print("\nfailed: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
