#!/usr/bin/env bash
# Create .venv and install the package with the workflow ([pipeline]) and the test tools
# ([dev]) at the exact versions CI ran (constraints.txt). Works offline on the project's
# machines: torch 2.14.1 / torchvision 0.29.1 come from the local wheel cache.
# The flatness library alone, in your own environment: pip install flatscape
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[pipeline,dev]'
