import copy
import os
from pathlib import Path

# As in the workflow (workflow/rules/common.smk): passive OpenMP waiting, so tests that
# share the cores with Snakemake jobs don't spin against them. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def deep_merge(base: dict, override: dict) -> dict:
    """Merge the way Snakemake merges --configfile over the Snakefile's configfile."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def preset(name: str) -> dict:
    base = yaml.safe_load((REPO / "config.yaml").read_text())
    if name == "quick":
        return base
    return deep_merge(base, yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text()))


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def one_thread():
    """Tiny problems gain nothing from threads, and on a shared machine extra threads spin."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A scratch copy of the workflow on which the tiny preset (tests/workflow_helpers.TINY) has
    run to completion: one run for the session, shared by the workflow tests that only read it
    or plan dry runs against it."""
    from workflow_helpers import scratch_workflow, snakemake

    work = scratch_workflow(tmp_path_factory.mktemp("wf"))
    snakemake(work, "--configfile", "tiny.yaml")
    return work


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve ``tmp_path/served`` on 127.0.0.1 (ephemeral port, no proxy) and record every GET."""
    from fixtures_data import PROXY_VARS, http_server

    served = tmp_path / "served"
    served.mkdir()
    for var in PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    with http_server(served) as srv:
        yield srv
