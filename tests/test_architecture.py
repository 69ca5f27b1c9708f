"""The package's layout stays as docs/architecture.md describes it: layers import only
downwards, chapters are independent, modules stay small, imports sit at the top, and the
thesis-item table points at rules, scripts and functions that exist."""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path

import pytest

from conftest import REPO
from core_install import CLI_ARGS, check_example_output, readme_example, run_blocked, tiny_npz

PACKAGE = REPO / "src" / "flatscape"
# Lower rank = lower layer; a module may import only its own rank or lower.
# ``flatness`` is the command-line tool: a layer beside the chapters, independent of them.
RANKS = {"pipeline": 0, "core": 1, "ch2": 2, "ch3": 2, "ch4": 2, "flatness": 2}
MAX_LINES = 420  # "about 400"
# Imports that may sit inside a function: optional or slow dependencies, each with a reason in place.
# torchvision (which pulls in torch._dynamo) and scikit-learn add seconds to every Snakemake
# job's start, so the core modules that most jobs import load them only where they are used.
# pandas and Pillow (PIL) come with the [pipeline] extra: the core install
# (`pip install flatscape`) lacks them, so the core modules it imports load them where used.
LAZY_ALLOWED = {"ultralytics", "matplotlib", "torchvision", "sklearn", "pandas", "PIL"}


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _name(path: Path) -> str:
    return ".".join(("flatscape", *path.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__")


def _imports(tree: ast.AST):
    """(imported module, is inside a function, line number) for every import statement."""
    parents = {}
    for node in ast.walk(tree):
        for child in ast.iter_child_nodes(node):
            parents[child] = node
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            up, nested = parents.get(node), False
            while up is not None:
                nested |= isinstance(up, (ast.FunctionDef, ast.AsyncFunctionDef))
                up = parents.get(up)
            for name in names:
                yield name, nested, node.lineno


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "flatscape" and parts[1] in RANKS else None


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_imports_only_its_layer_or_lower_and_no_other_chapter(path):
    here = _layer(_name(path))
    if here is None:
        return
    for imported, _, _ in _imports(ast.parse(path.read_text())):
        there = _layer(imported)
        if there is None:
            continue
        assert RANKS[there] <= RANKS[here], f"{_name(path)} imports {imported}: a higher layer"
        if RANKS[here] == RANKS[there] == 2:
            assert there == here, f"{_name(path)} imports {imported}: chapters are independent"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_small_and_imports_at_the_top(path):
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_LINES, f"{path.name}: {len(text.splitlines())} lines"
    lines = text.splitlines()
    for name, nested, lineno in _imports(ast.parse(text)):
        if not nested:
            continue
        assert name.split(".")[0] in LAZY_ALLOWED, f"{_name(path)}:{lineno} imports {name} inside a function"
        # the reason: a comment on the import's line or just above its block of imports
        first = lineno - 1
        while first > 0 and lines[first - 1].strip().startswith(("import ", "from ")):
            first -= 1
        assert "#" in lines[lineno - 1] or lines[first - 1].strip().startswith("#"), (
            f"{_name(path)}:{lineno}: say why {name} is imported here"
        )


def test_the_layer_rule_can_fail():
    tree = ast.parse("def f():\n    from flatscape.ch3.train import fit\n")
    ((imported, nested, _),) = _imports(tree)
    assert nested and RANKS[_layer(imported)] > RANKS["core"]


# ---- The core works without the [pipeline] extra ---------------------------------------------

# Run with the extra's packages refused (core_install.run_blocked): import the core, run the
# README's example (argv[1]), then the command on each case of argv[2], capturing its stderr.
_WITHOUT_THE_EXTRA = """
import contextlib, importlib, io, json, sys
for name in ("flatscape.core.flatness", "flatscape.flatness", "flatscape.core.models", "flatscape.core.train",
             "flatscape.core.train_group", "flatscape.core.datasets", "flatscape.core.encoders"):
    importlib.import_module(name)
try:
    import pandas
except ModuleNotFoundError:
    pass
else:
    raise SystemExit("pandas was importable: the test's blocking is broken")
exec(compile(sys.argv[1], "README.md", "exec"))
from flatscape.flatness.cli import main
refused = {}
for case, argv in json.loads(sys.argv[2]).items():
    with contextlib.redirect_stderr(io.StringIO()) as err:
        refused[case] = [main(argv), err.getvalue()]
print(json.dumps(refused))
"""


def test_the_core_works_without_the_pipeline_extra(tmp_path):
    """With snakemake, ultralytics, pandas, matplotlib, torchvision, scikit-learn, jsonschema,
    PyYAML and Pillow refused, the core imports, the README's example and the command on an
    ``npz:`` data set run, and what needs an extra is refused in one line naming it."""
    data = tiny_npz(tmp_path / "tiny.npz")
    (tmp_path / "images" / "cat").mkdir(parents=True)
    density_json = tmp_path / "density.json"
    cases = {
        "torchvision": ["--model", "torchvision:resnet18", "--data", f"npz:{data}", "--samples", "0"],
        "imagefolder": ["--model", "flatscape:f1", "--data", f"imagefolder:{tmp_path / 'images'}"],
        "digits": ["--model", "flatscape:f1", "--data", "digits"],
        "density": [*CLI_ARGS, "--data", f"npz:{data}", "--density", "--json", str(density_json)],
    }
    proc = run_blocked(tmp_path, "-c", _WITHOUT_THE_EXTRA, readme_example(), json.dumps(cases))
    assert proc.returncode == 0, proc.stderr[-3000:]
    *printed, last = proc.stdout.strip().splitlines()
    check_example_output(printed[-1])
    refused = json.loads(last)
    for case, (rc, err) in refused.items():
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (case, err)
    for case in ("torchvision", "imagefolder"):
        assert "needs torchvision, which is not installed" in refused[case][1]
        assert "pip install torchvision" in refused[case][1] and "flatscape[pipeline]" in refused[case][1]
    assert "needs sklearn" in refused["digits"][1] and "flatscape[pipeline]" in refused["digits"][1]
    assert "matplotlib" in refused["density"][1] and "pip install 'flatscape[plot]'" in refused["density"][1]
    assert not density_json.exists() and not (tmp_path / "density.density.png").exists()  # refused before measuring

    out = tmp_path / "out.json"
    cli = run_blocked(tmp_path, "-m", "flatscape.flatness", *CLI_ARGS, "--data", f"npz:{data}", "--json", str(out))
    assert cli.returncode == 0, cli.stderr[-3000:]
    value = json.loads(out.read_text())["measures"]["riemannian"]["spectral_norm"]["value"]
    assert value > 0 and f"{value:.6g}" in cli.stdout


def test_the_blocking_refuses_what_it_names_and_nothing_else(tmp_path):
    proc = run_blocked(tmp_path, "-c", "import numpy, scipy, tqdm, torch; import pandas", blocked=("pandas",))
    assert proc.returncode == 1 and proc.stderr.strip().endswith("ModuleNotFoundError: No module named 'pandas'")


# ---- docs/architecture.md: thesis item -> rule -> script -> function -----------------------

ROW = re.compile(r"^\| (?P<item>[^|]+) \| `(?P<rule>\w+)` \| `(?P<smk>[\w/.]+\.smk)` \| `(?P<script>[\w/.]+\.py)` \| `(?P<function>[\w.]+)` \|$")


def _rows():
    rows = [m.groupdict() for line in (REPO / "docs" / "architecture.md").read_text().splitlines() if (m := ROW.match(line))]
    assert len(rows) >= 20, "docs/architecture.md lost its thesis-item table"
    return rows


@pytest.mark.parametrize("row", _rows(), ids=lambda r: r["item"].strip())
def test_architecture_table_points_at_what_exists(row):
    smk = (REPO / row["smk"]).read_text()
    rule = re.search(rf"^[ \t]*rule {row['rule']}:\n(?P<body>(?:[ \t]+.*\n|\n)+)", smk, re.M)
    assert rule, f"rule {row['rule']} is not in {row['smk']}"
    assert f'"../../{row["script"]}"' in rule["body"], f"rule {row['rule']} does not run {row['script']}"
    module, _, function = row["function"].rpartition(".")
    assert hasattr(importlib.import_module(module), function), f"{row['function']} does not exist"
    script = (REPO / row["script"]).read_text()
    assert re.search(rf"from {re.escape(module)} import [^\n]*\b{function}\b", script), (
        f"{row['script']} does not call {row['function']}"
    )
