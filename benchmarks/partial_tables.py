"""Table 3.7's per-run table and the training-path tables from whatever runs of a preset have
finished: for a run cut short (a GPU lease that ended, a cluster job killed), where the workflow's
table rules, which need every run, cannot run yet.

    python benchmarks/partial_tables.py results/<preset> OUT_FOLDER

Writes OUT_FOLDER/table_3_7_runs.{csv,md}, table_3_7.{csv,md} (only rows and batch sizes with
finished runs; a ratio only where both batch sizes finished) and table_3_path(_runs).{csv,md}
from the measured snapshots and endpoints. Same library functions as the workflow's rules.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from flatscape.ch3.figures import path_figure
from flatscape.ch3.tables import collect_runs, path_tables, table_3_7, table_3_7_runs
from flatscape.pipeline.io import write_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results/<preset> of a (partly) finished run")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    minima = args.results / "ch3" / "minima"
    pairs = [(m, m.with_name(m.stem + "_flatness.json")) for m in sorted(minima.glob("*/*_seed*.json"))
             if not m.stem.endswith(("_flatness", "_measures")) and m.with_name(m.stem + "_flatness.json").exists()]  # fmt: skip
    print(f"{len(pairs)} measured minima under {minima}")
    runs = collect_runs(pairs)
    args.out.mkdir(parents=True, exist_ok=True)
    write_table(table_3_7_runs(runs), args.out / "table_3_7_runs", caption="Every measured run (partial)", float_format="{:.6g}")
    write_table(table_3_7(runs), args.out / "table_3_7", caption="Table 3.7 from the measured runs (partial)", float_format="{:.4g}")
    snaps = sorted(minima.glob("*/*_path/flatness_ce*.json"))
    if snaps:
        tables = path_tables(snaps, pairs)
        write_table(tables["table_3_path"], args.out / "table_3_path", caption="Training path (partial)", float_format="{:.4g}")
        write_table(tables["runs"], args.out / "table_3_path_runs", caption="Every measured snapshot (partial)", float_format="{:.6g}")
        path_figure(args.out / "table_3_path_runs.csv", args.out / "figure_3_path.png")
    print(f"tables in {args.out}")


if __name__ == "__main__":
    main()
