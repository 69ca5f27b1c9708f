"""What the core install (``pip install flatscape``, no extras) must still do, as tests use it.

``run_blocked`` runs a Python subprocess as if some packages were not installed: a
``sitecustomize.py`` placed first on its PYTHONPATH puts a finder at the front of
``sys.meta_path`` that refuses the named top-level packages with the ModuleNotFoundError an
absent package raises. It works for anything Python starts (``python -c``, a script, the
``snakemake`` command) without touching the environment. ``readme_example`` is the README's
Python example of measuring your own model; ``tiny_npz`` a data set for the command.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

from conftest import REPO

NOT_IN_CORE = ("snakemake", "ultralytics", "pandas", "matplotlib", "torchvision", "sklearn", "jsonschema", "yaml",
               "referencing", "PIL", "lap", "tabulate")  # fmt: skip
"""The [pipeline] extra's import names, and Pillow (torchvision's): the core install has none of them."""

_SITECUSTOMIZE = '''\
import os
import sys

_BLOCKED = frozenset(filter(None, os.environ.get("BLOCKED_IMPORTS", "").split(",")))


class _NotInstalled:
    """Refuses the blocked packages as Python refuses a package that is not installed."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled)
'''


def blocking_env(folder: Path, blocked: tuple[str, ...] = NOT_IN_CORE) -> dict[str, str]:
    """The environment of a subprocess in which ``blocked`` cannot be imported and this
    checkout's ``src/`` is the ``flatscape`` imported; writes ``folder/sitecustomize.py``."""
    (folder / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    path = os.pathsep.join([str(folder), str(REPO / "src")])
    return {**os.environ, "PYTHONPATH": path, "BLOCKED_IMPORTS": ",".join(blocked)}


def run_blocked(folder: Path, *args: str, blocked: tuple[str, ...] = NOT_IN_CORE, timeout: int = 300,
                executable: str = sys.executable) -> subprocess.CompletedProcess:
    """``executable *args`` (default: this Python) in ``folder`` with ``blocked`` refused; text output captured."""
    return subprocess.run([executable, *args], env=blocking_env(folder, blocked), cwd=folder, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


def readme_example() -> str:
    """The Python block of the README's "Measuring your own model" section, as a user copies it."""
    section = (REPO / "README.md").read_text().split("## Measuring your own model", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "README's 'Measuring your own model' lost its Python example"
    return match.group(1)


def check_example_output(stdout: str) -> None:
    """The example prints ``value num_hvp converged``: a positive value, HVPs spent, converged."""
    value, num_hvp, converged = stdout.split()[-3:]
    assert float(value) > 0 and int(num_hvp) > 0 and converged == "True", stdout


def tiny_npz(path: Path) -> Path:
    """24 uint8 images of 1x8x8 in 3 classes (``npz:`` data for ``--model flatscape:f1``)."""
    rng = np.random.default_rng(0)
    np.savez(path, x=rng.integers(0, 256, (24, 1, 8, 8), dtype=np.uint8), y=rng.integers(0, 3, 24))
    return path


# The command on tiny_npz: cheap settings, every number in --json.
CLI_ARGS = ("--model", "flatscape:f1", "--samples", "0", "--batch-size", "12", "--tol", "1e-2", "--max-hvp", "40",
            "--no-progress")  # fmt: skip
