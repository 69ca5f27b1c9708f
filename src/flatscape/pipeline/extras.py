"""What the core install lacks, and the one line that says so.

``pip install flatscape`` brings torch, numpy, scipy and tqdm: enough for
``flatscape.core`` and the ``flatscape`` command. The workflow (its config check, every
job, the chapters' tables and figures) needs the ``[pipeline]`` extra. Its entry points
check for the extra before anything else, so that a missing package stops them with one
line naming the extra instead of an ImportError from deep inside a chapter.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable

PIPELINE = "pip install 'flatscape[pipeline]'"
PLOT = "pip install 'flatscape[plot]'"

JOB_MODULES = ("torchvision", "ultralytics", "lap", "pandas", "matplotlib", "sklearn", "jsonschema", "yaml", "tabulate")
"""Import names of the ``[pipeline]`` extra that the workflow's jobs use. Snakemake and its
SLURM plugin are left out: they start jobs, no job imports them (under ``--sdm conda``
the jobs' environment, ``envs/flatscape.yaml``, has neither)."""


def missing(modules: Iterable[str]) -> list[str]:
    """Those of ``modules`` that cannot be imported here (looked up, not imported: cheap)."""
    absent = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except ImportError:  # an import hook refusing it, or a parent package that is missing
            found = False
        if not found:
            absent.append(name)
    return absent


def missing_line(entry: str, absent: Iterable[str], install: str = PIPELINE) -> str:
    """``entry needs the [pipeline] extra (not installed: a, b): pip install ...``"""
    return f"{entry} needs the [pipeline] extra (not installed: {', '.join(absent)}): {install}"


def require_pipeline(entry: str, modules: Iterable[str] = JOB_MODULES) -> None:
    """Stop with one line on stderr (``SystemExit``, status 1) when any of ``modules`` is missing.

    ``entry`` names what stops (a chapter, a job, the config check). A script run by
    Snakemake and the Snakefile itself both end on this line, with no traceback.
    """
    absent = missing(modules)
    if absent:
        raise SystemExit(missing_line(entry, absent))
