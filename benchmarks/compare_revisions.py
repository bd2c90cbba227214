"""The engine's side of ``bench_engine.py`` at another git revision and at this tree, alternating.

Usage: ``.venv/bin/python benchmarks/compare_revisions.py REV [--rows N] [--rounds K]``.
REV is checked out in a temporary git worktree; each round runs both sides (in
alternating order, on the same Parquet files) and the table prints the median of
the rounds and the ratio this tree / REV. For a refactor, ratios near 1 (within the
machine's noise, about 10%) mean no regression.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_engine import generate

HERE = Path(__file__).resolve().parent
TREE = HERE.parent


def _engine_side(tree: Path, v1: Path, v2: Path) -> dict[str, float]:
    """One run of the engine side with ``tree``'s code and its own bench_engine.py."""
    proc = subprocess.run(
        [
            sys.executable,
            str(tree / "benchmarks" / "bench_engine.py"),
            "--side",
            "engine",
            str(v1),
            str(v2),
            "3",
        ],
        env={**os.environ, "PYTHONPATH": str(tree)},
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "rev", help="the git revision to compare with (e.g. a commit before a change)"
    )
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    v1, v2 = generate(args.rows)
    with tempfile.TemporaryDirectory() as folder:
        other = Path(folder) / "rev"
        subprocess.run(
            ["git", "-C", str(TREE), "worktree", "add", "-q", "--detach", str(other), args.rev],
            check=True,
        )
        try:
            sides = {args.rev: other, "this tree": TREE}
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in sides}
            for r in range(args.rounds):
                order = list(sides.items())
                for name, tree in order if r % 2 == 0 else reversed(order):
                    runs[name].append(_engine_side(tree, v1, v2))
        finally:
            subprocess.run(
                ["git", "-C", str(TREE), "worktree", "remove", "--force", str(other)], check=False
            )
    print(f"{args.rows:,} rows, {args.rounds} alternating rounds; seconds, median of the rounds")
    print(f"| operation | {args.rev} | this tree | ratio |")
    print("|---|---|---|---|")
    for op in (k for k in runs["this tree"][0] if not k.startswith("_")):
        old = statistics.median(r[op] for r in runs[args.rev])
        new = statistics.median(r[op] for r in runs["this tree"])
        print(f"| {op} | {old:.3f} | {new:.3f} | {new / old:.2f} |")


if __name__ == "__main__":
    main()
