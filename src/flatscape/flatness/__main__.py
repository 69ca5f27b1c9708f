"""``python -m flatscape.flatness``: the same command as ``flatscape``."""

from flatscape.flatness.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
