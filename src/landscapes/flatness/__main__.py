"""``python -m landscapes.flatness``: the same command as ``landscapes-flatness``."""

from landscapes.flatness.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
