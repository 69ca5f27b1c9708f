"""The package installs into a researcher's own environment (issue 30): core dependencies by
range, the workflow as the [pipeline] extra, exact versions in constraints.txt, one version,
a licence and a citation; without the extra, every pipeline entry point stops on one line
naming it; and the wheel, built and installed alone into a fresh venv, measures a model."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
import tomllib
import types
import zipfile
from pathlib import Path

import pytest
import yaml

import flatscape
from conftest import REPO
from core_install import CLI_ARGS, check_example_output, readme_example, run_blocked, tiny_npz
from flatscape.flatness.cli import main
from flatscape.pipeline import extras
from workflow_helpers import SNAKEMAKE, scratch_workflow

PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
CORE = {"torch", "numpy", "scipy", "tqdm"}
EXTRA = "pip install 'flatscape[pipeline]'"


def _name(requirement: str) -> str:
    """The normalised distribution name of a requirement (``mkdocstrings[python]>=0.26`` -> ``mkdocstrings``)."""
    return re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", requirement).group(0)).lower()


def _pins(lines) -> dict[str, str]:
    pins = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, version = line.partition("==")
            assert sep and version, f"not an exact pin: {line!r}"
            pins[_name(name)] = version
    return pins


CONSTRAINTS = _pins((REPO / "constraints.txt").read_text().splitlines())


# ---- what the project declares --------------------------------------------------------------


def test_the_core_needs_torch_by_range_numpy_scipy_and_tqdm_only():
    deps = PYPROJECT["project"]["dependencies"]
    assert {_name(d) for d in deps} == CORE
    torch = next(d for d in deps if _name(d) == "torch").replace(" ", "")
    assert torch == "torch>=2.4", "torch by a lower bound only: a user's own torch must stay"
    assert not any("==" in d or "<" in d for d in deps)


def test_the_workflow_is_the_pipeline_extra():
    extras_ = PYPROJECT["project"]["optional-dependencies"]
    assert {_name(d) for d in extras_["pipeline"]} == {
        "snakemake", "snakemake-executor-plugin-slurm", "torchvision", "ultralytics", "lap", "pandas", "matplotlib",
        "scikit-learn", "jsonschema", "pyyaml", "tabulate",
    }  # fmt: skip
    assert "snakemake>=9,<10" in extras_["pipeline"]
    assert extras_["plot"] == ["matplotlib"]
    assert {"docs", "dev", "bench"} <= set(extras_) and "build" in extras_["dev"]


def test_constraints_pin_every_declared_dependency_at_what_ci_ran():
    assert CONSTRAINTS["torch"] == "2.14.1" and CONSTRAINTS["torchvision"] == "0.29.1"
    declared = PYPROJECT["project"]["dependencies"] + [
        d for extra in ("pipeline", "dev", "docs") for d in PYPROJECT["project"]["optional-dependencies"][extra]
    ]
    unpinned = {_name(d) for d in declared} - set(CONSTRAINTS)
    assert not unpinned, f"constraints.txt pins no version of {sorted(unpinned)}"
    assert "flatscape" not in CONSTRAINTS and "landscapes" not in CONSTRAINTS
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "-c constraints.txt -e '.[pipeline,dev]'" in setup


def test_the_jobs_conda_env_pins_the_constraints_versions():
    env = yaml.safe_load((REPO / "envs" / "flatscape.yaml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    pins = _pins(pip)
    jobs = CORE | {_name(d) for d in PYPROJECT["project"]["optional-dependencies"]["pipeline"]}
    assert set(pins) == jobs - {"snakemake", "snakemake-executor-plugin-slurm"}
    assert {k: CONSTRAINTS[k] for k in pins} == pins


def test_the_version_is_kept_in_one_place_and_the_command_reports_it(capsys):
    assert PYPROJECT["project"]["dynamic"] == ["version"] and "version" not in PYPROJECT["project"]
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "flatscape.__version__"}
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"flatscape {flatscape.__version__}"
    assert "version" not in yaml.safe_load((REPO / "CITATION.cff").read_text())
    first = re.search(r"^## (\S+)", (REPO / "CHANGELOG.md").read_text(), re.M).group(1)
    assert first == flatscape.__version__, "CHANGELOG.md's newest entry is not this version"


def test_licence_and_citation():
    assert PYPROJECT["project"]["license"] == "MIT" and (REPO / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT" and cff["type"] == "software"
    (thesis,) = [r for r in cff["references"] if r["type"] == "thesis"]
    assert thesis["authors"] == [{"family-names": "Rangamani", "given-names": "Akshay"}] and thesis["year"] == 2019
    reference = REPO.parent / "shared" / "reference" / "thesis.txt"
    if reference.is_file():  # the dissertation's own title page
        assert thesis["title"].upper() in reference.read_text()[:2000]
    readme = (REPO / "README.md").read_text()
    assert "Ultralytics (AGPL-3.0)" in readme and "[pipeline]" in readme


# ---- without the extra, one line naming it -------------------------------------------------


def test_missing_and_require_pipeline():
    assert extras.missing(["json", "no_such_module_here", "no_such_pkg.sub"]) == ["no_such_module_here", "no_such_pkg.sub"]
    extras.require_pipeline("anything", ["json"])  # present: nothing happens
    with pytest.raises(SystemExit) as stop:
        extras.require_pipeline("flatscape.ch9", ["json", "no_such_module_here"])
    assert stop.value.code == f"flatscape.ch9 needs the [pipeline] extra (not installed: no_such_module_here): {EXTRA}"


def _one_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr[-3000:]
    return proc.stderr.strip()


def test_a_chapter_script_without_the_extra_stops_on_one_line(tmp_path):
    proc = run_blocked(tmp_path, str(REPO / "scripts" / "ch3" / "table_3_7.py"), blocked=("pandas", "matplotlib"))
    assert _one_line(proc) == f"flatscape.ch3 needs the [pipeline] extra (not installed: pandas, matplotlib): {EXTRA}"


def test_a_data_script_without_the_extra_stops_on_one_line(tmp_path):
    # As Snakemake runs it: the script as __main__ with a `snakemake` object in its globals.
    job = types.SimpleNamespace(rule="dataset", log=[], threads=1)
    code = (f"import runpy, types; runpy.run_path({str(REPO / 'scripts' / 'data' / 'fetch_dataset.py')!r}, "
            f"init_globals={{'snakemake': types.SimpleNamespace(**{vars(job)!r})}}, run_name='__main__')")  # fmt: skip
    proc = run_blocked(tmp_path, "-c", code, blocked=("sklearn",))
    assert _one_line(proc) == f"rule dataset needs the [pipeline] extra (not installed: sklearn): {EXTRA}"


def test_the_claims_script_without_the_extra_stops_on_one_line(tmp_path):
    proc = run_blocked(tmp_path, str(REPO / "scripts" / "tools" / "claims.py"), blocked=("pandas",))
    assert _one_line(proc) == f"the claims summary needs the [pipeline] extra (not installed: pandas): {EXTRA}"


def test_snakemake_without_the_extra_stops_on_one_line(tmp_path):
    (tmp_path / "wf").mkdir()
    work = scratch_workflow(tmp_path / "wf")
    proc = run_blocked(tmp_path, "-n", "--cores", "1", "--directory", str(work), "--snakefile", str(work / "Snakefile"),
                       blocked=("jsonschema",), executable=SNAKEMAKE)  # fmt: skip
    assert _one_line(proc) == f"the workflow's config check needs the [pipeline] extra (not installed: jsonschema): {EXTRA}"
    assert not (work / "results").exists()


def test_a_broken_install_still_raises_its_own_error(tmp_path):
    # jsonschema present but failing inside: its own ImportError, not a claim that the extra is missing
    (tmp_path / "jsonschema").mkdir()
    (tmp_path / "jsonschema" / "__init__.py").write_text("raise ImportError('broken jsonschema')\n")
    proc = run_blocked(tmp_path, "-c", "import flatscape.pipeline.config", blocked=())
    assert proc.returncode == 1 and "ImportError: broken jsonschema" in proc.stderr


# ---- the wheel, alone in a fresh virtual environment ------------------------------------------


def _torch_url(constraint: Path) -> str:
    """Where pip would take this torch from (nothing is downloaded), or why it cannot."""
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps",
                           "--quiet", "--report", "-", "-c", str(constraint), "torch"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    if proc.returncode != 0:
        return "nowhere: " + (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
    return json.loads(proc.stdout)["install"][0]["download_info"]["url"]


def _local_cpu_torch() -> Path | None:
    """The newest CPU-only torch wheel for this Python in pip's local wheel directories (find-links), if
    any: what a researcher without a GPU has, at a version the pipeline's pins do not choose (the core's
    lower bound is what is tested), and 0.2 GB to install where the CUDA build brings 5.5 GB."""
    listed = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                            timeout=60).stdout  # fmt: skip
    dirs = os.environ.get("PIP_FIND_LINKS", "").split()
    dirs += [d for line in listed.splitlines() if ".find-links=" in line
             for d in line.split("=", 1)[1].strip("'\"").split()]  # fmt: skip
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    wheels = [w for d in dirs if Path(d).is_dir() for w in Path(d).glob(f"torch-*+cpu-{tag}-{tag}-*linux*.whl")]
    return max(wheels, key=lambda w: tuple(int(x) for x in w.name.split("-")[1].split("+")[0].split(".")),
               default=None)  # fmt: skip


def _run(cmd, *, cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # the venv alone: no PYTHONPATH leading back to this checkout, no user site-packages
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env={**env, "PYTHONNOUSERSITE": "1"}, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


# In the fresh venv, without importing torch: where flatscape and torch come from, and what
# importing Snakemake and Ultralytics says.
_WHAT_IS_THERE = """
import importlib, importlib.metadata, json, flatscape
there = {"flatscape": flatscape.__file__, "torch": importlib.metadata.version("torch")}
for name in ("snakemake", "ultralytics"):
    try:
        importlib.import_module(name)
        there[name] = "importable"
    except ModuleNotFoundError as err:
        there[name] = str(err)
print(json.dumps(there))
"""


@pytest.mark.slow
@pytest.mark.timeout(2400)  # minutes when idle; a loaded machine starves the fresh venv's installs and runs
def test_the_wheel_installs_alone_into_a_fresh_venv(tmp_path):
    """``python -m build`` (the sdist, then the wheel from it); the wheel with its core
    dependencies only into a fresh venv (torch from the local wheel directory: its CPU-only build where
    there is one, else the pipeline's); there the README's
    example and the command run, and neither Snakemake nor Ultralytics can be imported."""
    clock = {"start": time.perf_counter()}
    constraint = tmp_path / "torch.txt"
    cpu_torch = _local_cpu_torch()
    if cpu_torch is not None:  # a CPU-only torch from the local wheel directory, installed by path
        torch_version = cpu_torch.name.split("-")[1]
        torch_args = [cpu_torch]
        constraint.write_text("")
    else:  # the pipeline's own torch, from the local cache pip would take it from
        torch_version = importlib.metadata.version("torch")
        constraint.write_text(f"torch=={torch_version}\n")  # the tested torch, not whatever is newest
        url = _torch_url(constraint)
        if not url.startswith("file:"):
            pytest.skip(f"torch {torch_version} is not in a local wheel cache (pip would fetch {url}): a fresh venv "
                        "would download it; this test runs where the wheels lie on disk")  # fmt: skip
        torch_args = []

    tree = tmp_path / "tree"  # what the sdist is built from: a copy, so no build files land in the checkout
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, tree / name)
    shutil.copytree(REPO / "src", tree / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    dist = tmp_path / "dist"
    built = subprocess.run([sys.executable, "-m", "build", "--outdir", str(dist), str(tree)], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (sdist,), (wheel,) = list(dist.glob("*.tar.gz")), list(dist.glob("*.whl"))
    assert wheel.name == f"flatscape-{flatscape.__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        names = whl.namelist()
        meta = whl.read(f"flatscape-{flatscape.__version__}.dist-info/METADATA").decode()
    assert "flatscape/pipeline/schemas/config.schema.yaml" in names
    assert f"flatscape-{flatscape.__version__}.dist-info/licenses/LICENSE" in names
    assert "License-Expression: MIT" in meta
    requires = re.findall(r"^Requires-Dist: (.+)$", meta, re.M)
    assert {_name(r) for r in requires if "extra ==" not in r} == CORE
    clock["build"] = time.perf_counter()

    venv = tmp_path / "venv"
    try:
        made = _run([sys.executable, "-m", "venv", venv], cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        py, bin_ = venv / "bin" / "python", venv / "bin"
        # --no-compile: byte-compiling all of torch costs more than the few modules a run imports
        installed = _run([py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
                          "-c", constraint, *torch_args, wheel], cwd=tmp_path, timeout=1800)  # fmt: skip
        assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
        clock["install"] = time.perf_counter()

        where = _run([py, "-c", _WHAT_IS_THERE], cwd=tmp_path)
        assert where.returncode == 0, where.stderr[-3000:]
        there = json.loads(where.stdout)
        assert Path(there["flatscape"]).is_relative_to(venv) and there["torch"] == torch_version
        assert there["snakemake"] == "No module named 'snakemake'" and there["ultralytics"] == "No module named 'ultralytics'"
        example = _run([py, "-c", readme_example()], cwd=tmp_path)
        assert example.returncode == 0, example.stderr[-3000:]
        check_example_output(example.stdout)
        version = _run([bin_ / "flatscape", "--version"], cwd=tmp_path)
        assert version.returncode == 0 and version.stdout.strip() == f"flatscape {flatscape.__version__}"
        data, out = tiny_npz(tmp_path / "tiny.npz"), tmp_path / "out.json"
        cli = _run([bin_ / "flatscape", *CLI_ARGS, "--data", f"npz:{data}", "--json", out], cwd=tmp_path)
        assert cli.returncode == 0, cli.stderr[-3000:]
        value = json.loads(out.read_text())["measures"]["riemannian"]["spectral_norm"]["value"]
        assert value > 0 and f"{value:.6g}" in cli.stdout
        clock["checks"] = time.perf_counter()
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # torch and its CUDA libraries: gigabytes
        clock["cleanup"] = time.perf_counter()
    steps = list(clock.items())
    print("wheel test:", ", ".join(f"{k} {t - p:.0f} s" for (_, p), (k, t) in zip(steps, steps[1:])))
