"""Compare the tables of two runs of a preset, column by column, ignoring wall-clock columns.

    python benchmarks/compare_tables.py results_a/quick/tables results_b/quick/tables

Prints every table whose columns differ and exits 1 if any column other than a timing one
(``*seconds*``) does: how the rename to ``flatscape`` was checked to leave every table as it was.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd


def differing_columns(a: Path, b: Path) -> dict[str, list[str]]:
    out = {}
    for left in sorted(a.glob("*.csv")):
        right = b / left.name
        if not right.exists():
            out[left.name] = ["<missing>"]
            continue
        x, y = pd.read_csv(left), pd.read_csv(right)
        if list(x.columns) != list(y.columns):
            out[left.name] = ["<columns>"]
            continue
        cols = [c for c in x.columns if not x[c].equals(y[c])]
        if cols:
            out[left.name] = cols
    return out


def main() -> int:
    a, b = Path(sys.argv[1]), Path(sys.argv[2])
    diffs = differing_columns(a, b)
    real = {k: v for k, v in diffs.items() if any("seconds" not in c for c in v)}
    for name, cols in diffs.items():
        print(f"{'DIFFERS' if name in real else 'timing only'}: {name}: {', '.join(cols)}")
    print(f"{len(list(a.glob('*.csv')))} tables compared; {len(real)} differ beyond wall-clock columns")
    return 1 if real else 0


if __name__ == "__main__":
    sys.exit(main())
