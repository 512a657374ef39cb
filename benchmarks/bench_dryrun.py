"""Dry-run time of the paper-scale DAG (not a test): jobs planned and seconds, against the 20 s goal.

    python benchmarks/bench_dryrun.py [--configfile config/paper.yaml ...] [--repeats 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configfile", nargs="+", default=[str(REPO / "config" / "paper.yaml")])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--goal", type=float, default=20.0)
    args = ap.parse_args()
    times, jobs = [], None
    with tempfile.TemporaryDirectory() as work:
        for _ in range(args.repeats):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory", work,
                                   "-n", "--quiet", "rules", "--configfile", *args.configfile],
                                  capture_output=True, text=True, check=True)
            times.append(time.perf_counter() - start)
            jobs = int(next(l.split()[1] for l in proc.stdout.splitlines() if l.startswith("total")))
    best = min(times)
    print(f"{jobs} jobs; dry-run {best:.1f} s (best of {args.repeats}: {', '.join(f'{t:.1f}' for t in times)}); "
          f"goal {args.goal:.0f} s -> {best / args.goal:.2f} of the goal")


if __name__ == "__main__":
    main()
