"""The documentation site (mkdocs.yml, docs/) builds in strict mode, so a broken link, a
missing page or an API entry that names no object fails here; its front page renders
in headless Chromium without JavaScript errors."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import Tables, render, serve
from conftest import REPO


def _build(root: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(root / "mkdocs.yml"), "--site-dir", str(site)]
    return subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    site = tmp_path_factory.mktemp("site")
    proc = _build(REPO, site)
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    return site


def test_every_page_of_the_nav_is_built_with_the_api_reference(site):
    for page in ("index.html", "running/index.html", "results/index.html", "paper/index.html", "cluster/index.html",
                 "library/index.html", "benchmarks/index.html", "architecture/index.html", "ch2_bias_reading/index.html"):  # fmt: skip
        assert (site / page).is_file(), page
    api = (site / "api/index.html").read_text()
    # mkdocstrings found the objects and rendered their docstrings
    assert 'id="flatscape.core.flatness.measures.riemannian_spectral_norm"' in api
    assert 'id="flatscape.pipeline.claims.claims_table"' in api


def test_the_results_and_benchmark_pages_keep_their_places_for_new_results(site):
    results = (site / "results/index.html").read_text()
    for anchor in ("table-37-protocols", "other-flatness-measures"):
        assert f'id="{anchor}"' in results
    assert 'id="benchmarks-against-the-peers"' in (site / "benchmarks/index.html").read_text()


def test_a_broken_link_fails_the_strict_build(tmp_path):
    root = tmp_path / "repo"
    shutil.copytree(REPO / "docs", root / "docs")
    shutil.copy2(REPO / "mkdocs.yml", root / "mkdocs.yml")
    os.symlink(REPO / "src", root / "src")
    page = root / "docs" / "running.md"
    page.write_text(page.read_text() + "\nSee [the missing page](no_such_page.md).\n")
    proc = _build(root, tmp_path / "site")
    assert proc.returncode != 0
    assert "no_such_page.md" in proc.stdout + proc.stderr


def test_the_front_page_renders_in_a_browser_without_javascript_errors(site, tmp_path):
    with serve(site) as url:
        shown = render(url, tmp_path / "profile")
    assert shown.js_errors == []
    assert "<h1" in shown.dom and "Loss landscapes" in shown.dom
    questions = [t for t in Tables(shown.dom).tables if t[1] and t[1][0] == ["your question", "page"]]
    assert questions and len(questions[0][1]) > 5  # the page's table of reader questions, rendered


def test_the_readme_is_a_front_page_whose_links_lead_somewhere(site):
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    assert "bash scripts/setup.sh && .venv/bin/snakemake --cores 2" in text
    assert "bash scripts/setup.sh && .venv/bin/python -m pytest" in text
    links = re.findall(r"\]\(([^)#\s]+)(?:#([^)\s]+))?\)", text)
    assert len(links) > 10
    for target, anchor in links:
        if "://" in target:
            continue
        assert (REPO / target).exists(), f"README links to {target}, which does not exist"
        if target.startswith("docs/") and target.endswith(".md") and anchor:
            page = site / Path(target).relative_to("docs").with_suffix("") / "index.html"
            assert f'id="{anchor}"' in page.read_text(), f"README links to {target}#{anchor}: no such heading"
