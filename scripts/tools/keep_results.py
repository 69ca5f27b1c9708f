"""Keep a long run's results in the repository: its tables and figures, copied from
``results/<preset>/`` into ``docs/results/<name>/``, with a README that records the command,
the machine, the wall time and the jobs' own times (from the rules' ``benchmark:`` files).

Results a user cannot reproduce in minutes are kept this way (README: "Results of long runs").
Checkpoints and weights (``.pt``, ``.ckpt``) are never copied.

    python scripts/tools/keep_results.py table37_datasize docs/results/table37_datasize \\
        --command "snakemake --cores 2 ch3 --configfile config/table37_datasize.yaml" \\
        --machine "this project's 2-core CPU machine, no GPU" --started 2026-12-06T23:32 \\
        --tables 'table_3_7*' 'table_3_path*' --note "..."
"""

from __future__ import annotations

import argparse
import datetime as dt
import fnmatch
import shutil
import sys
from pathlib import Path

import pandas as pd


def job_times(bench: Path, jobs: list[str] | None = None) -> pd.DataFrame:
    """One row per job: its rule and wildcards (the benchmark file's name), wall and CPU seconds.

    ``jobs``: globs on the job's name (its benchmark file's path under ``bench``, without
    ``.tsv``; ``*`` crosses folders), e.g. ``ch2/*`` for one chapter of a run that made several."""
    rows = []
    for tsv in sorted(bench.rglob("*.tsv")):
        name = str(tsv.relative_to(bench).with_suffix(""))
        if jobs and not any(fnmatch.fnmatch(name, pattern) for pattern in jobs):
            continue
        frame = pd.read_csv(tsv, sep="\t")
        rows.append({"job": str(tsv.relative_to(bench).with_suffix("")), "wall_s": float(frame["s"].iloc[-1]),
                     "cpu_s": float(frame["cpu_time"].iloc[-1]), "max_rss_mb": float(frame["max_rss"].iloc[-1])})  # fmt: skip
    if not rows:
        which = f" matching {' '.join(jobs)}" if jobs else ""
        raise SystemExit(f"keep_results: no benchmark files{which} under {bench}: has the run been made here?")
    return pd.DataFrame(rows)


def _kind(job: str) -> str:
    return Path(job).name.split("_mnist")[0].split("_cifar")[0].split("_digits")[0]


def copy_outputs(results: Path, dest: Path, tables: list[str], figures: list[str]) -> list[str]:
    copied = []
    for sub, patterns in (("tables", tables), ("figures", figures)):
        for pattern in patterns:
            matches = sorted((results / sub).glob(pattern))
            if not matches:
                raise SystemExit(f"keep_results: nothing matches {results / sub / pattern}")
            for src in matches:
                if src.suffix in (".pt", ".ckpt"):
                    continue
                shutil.copy2(src, dest / src.name)
                copied.append(src.name)
    return copied


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset")
    parser.add_argument("dest", type=Path)
    parser.add_argument("--command", required=True, help="the command that made the run, as a user types it")
    parser.add_argument("--machine", required=True)
    parser.add_argument("--started", required=True, help="when the command started (ISO time, UTC)")
    parser.add_argument("--finished", help="when it finished (ISO time, UTC); default: the newest benchmark file")
    parser.add_argument("--tables", nargs="*", default=["*.md", "*.csv"], help="globs under results/<preset>/tables")
    parser.add_argument("--figures", nargs="*", default=["*.png"], help="globs under results/<preset>/figures")
    parser.add_argument("--note", default="", help="load on the machine, what ran beside it, anything a reader needs")
    parser.add_argument("--jobs", nargs="*", default=None,
                        help="globs on the jobs' benchmark paths under benchmarks/<preset> (e.g. 'ch2/*'); default: all")
    parser.add_argument("--root", type=Path, default=Path("."), help="the workflow directory the run was made in")
    args = parser.parse_args(argv)

    results, bench = args.root / "results" / args.preset, args.root / "benchmarks" / args.preset
    if not results.is_dir():
        raise SystemExit(f"keep_results: {results} does not exist")
    times = job_times(bench, args.jobs)  # before anything is written: a run without benchmark files is refused
    args.dest.mkdir(parents=True, exist_ok=True)
    copied = copy_outputs(results, args.dest, args.tables, args.figures)
    times.to_csv(args.dest / "job_times.csv", index=False)

    started = dt.datetime.fromisoformat(args.started)
    if args.finished:
        finished = dt.datetime.fromisoformat(args.finished)
    else:
        newest = max(p.stat().st_mtime for p in bench.rglob("*.tsv"))
        finished = dt.datetime.fromtimestamp(newest, dt.timezone.utc).replace(tzinfo=None)
    wall = finished - started
    by_kind = times.assign(kind=times["job"].map(_kind)).groupby("kind")[["wall_s", "cpu_s"]].agg(["count", "sum"])
    lines = [
        f"# `{args.preset}`: the kept results",
        "",
        f"Made with\n\n    {args.command}\n",
        f"on {args.machine}, from {started:%Y-%m-%d %H:%M} to {finished:%Y-%m-%d %H:%M} UTC "
        f"(wall time {wall.total_seconds() / 3600:.2f} h; {len(times)} jobs, "
        f"{times['cpu_s'].sum() / 3600:.2f} CPU-hours by their benchmark files).",
        "",
    ]
    if args.note:
        lines += [args.note, ""]
    lines += ["Jobs by kind (seconds; every job's own times: `job_times.csv`):", "",
              "| kind | jobs | wall (sum) | CPU (sum) |", "| --- | --- | --- | --- |"]  # fmt: skip
    for kind, row in by_kind.iterrows():
        lines.append(f"| {kind} | {int(row[('wall_s', 'count')])} | {row[('wall_s', 'sum')]:.0f} | {row[('cpu_s', 'sum')]:.0f} |")
    lines += ["", "Files: " + ", ".join(f"`{name}`" for name in copied) + ", `job_times.csv`.", ""]
    (args.dest / "README.md").write_text("\n".join(lines))
    print(f"kept {len(copied)} files and the job times of {len(times)} jobs in {args.dest}", file=sys.stderr)


if __name__ == "__main__":
    main()
