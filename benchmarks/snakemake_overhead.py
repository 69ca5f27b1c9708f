"""How long Snakemake takes before any job runs: parsing, the paper DAG, a no-op rerun.

    .venv/bin/python benchmarks/snakemake_overhead.py [--finished DIR --target ch4_partial --configfile tiny.yaml]

Times (best of --repeats, wall clock) of:
  parse       snakemake --list-rules (reading the Snakefile, config validation, imports)
  dry-run     snakemake -n paper --configfile config/paper.yaml (the whole thesis DAG)
  no-op       snakemake TARGET in DIR, a workflow copy whose TARGET is finished
Every cluster job pays for two parses (the submitting job and the job step), so the
parse time is also the per-job overhead on SLURM. The 1-minute load average is printed
beside the numbers: on a shared machine they scale with it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")


def best_time(cmd: list[str], cwd: Path, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--finished", type=Path, help="a workflow directory whose --target is complete")
    parser.add_argument("--target", default="ch4_partial")
    parser.add_argument("--configfile", default="tiny.yaml")
    args = parser.parse_args()
    base = [SNAKEMAKE, "--cores", "2"]
    rows = [
        ("parse", best_time(base + ["--list-rules", "--configfile", "config/paper.yaml"], REPO, args.repeats)),
        ("dry-run paper", best_time(base + ["paper", "-n", "--quiet", "all", "--configfile", "config/paper.yaml"], REPO, args.repeats)),
    ]
    if args.finished:
        cmd = base + ["--directory", str(args.finished), "--snakefile", str(args.finished / "Snakefile"),
                      args.target, "--configfile", args.configfile]
        rows.append((f"no-op {args.target}", best_time(cmd, args.finished, args.repeats)))
    print(f"load average (1 min) {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; best of {args.repeats}")
    for name, seconds in rows:
        print(f"{name:<22} {seconds:6.2f} s   ({seconds / rows[0][1]:.2f} x parse)")


if __name__ == "__main__":
    main()
