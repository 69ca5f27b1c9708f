"""Operations on the real DAG: cached reruns, the HTML report, GPU pinning and faults.

One finished run of the Chapter 4a slice (tiny settings, 2 epochs so a training job
has checkpoints to resume from) is shared; tests that damage or change things work
on copies of it.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from flatscape.pipeline.config import validate_config

from conftest import REPO
from flatscape.pipeline.gpus import claim_gpu, release_gpu
from flatscape.pipeline.io import save_checkpoint
from workflow_helpers import SNAKEMAKE, planned_jobs, scratch_workflow, snakemake

pytestmark = pytest.mark.slow

TARGET = "ch4_partial"
OPS = {
    "ch4": {
        "partial": {
            "train": {"epochs": 2, "batch_size": 48, "checkpoint_every": 1},
            "train_ratios": [0.5],
            "test_ratios": [1.0],
            "random_column": False,
            "autoencoder": {"enabled": False},
        }
    }
}
MODELS = "results/tiny/ch4/partial/models"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A scratch workflow on which the Chapter 4a slice has run to completion."""
    work = scratch_workflow(tmp_path_factory.mktemp("ops"), OPS)
    snakemake(work, TARGET, "--configfile", "tiny.yaml")
    return work


def _copy(finished: Path, dest: Path) -> Path:
    """A copy of the finished run (results, logs, Snakemake's metadata), timestamps kept."""
    shutil.copytree(finished, dest, symlinks=True)
    return dest


def _write_config(work: Path, name: str, key: str, value) -> str:
    """tiny.yaml with the dotted ``key`` set to ``value``, saved as ``name``."""
    cfg = yaml.safe_load((work / "tiny.yaml").read_text())
    *parents, last = key.split(".")
    node = cfg
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    (work / name).write_text(yaml.safe_dump(cfg))
    return name


def _job_graph(work: Path, *args: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Every job of the target's DAG (node id -> rule) and its edges, from ``--dag --forceall``."""
    out = snakemake(work, "--dag", "--forceall", *args).stdout
    nodes = {m[1]: m[2] for m in re.finditer(r'^\s*(\d+)\[label = "([^"\\]+)', out, re.M)}
    edges = re.findall(r"^\s*(\d+) -> (\d+)", out, re.M)
    return nodes, edges


def _downstream_counts(nodes, edges, rule: str) -> dict[str, int]:
    """Rule -> number of jobs that are ``rule``'s jobs or depend on them, directly or not."""
    children: dict[str, list[str]] = {}
    for parent, child in edges:
        children.setdefault(parent, []).append(child)
    todo = [n for n, r in nodes.items() if r == rule]
    seen = set(todo)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    counts: dict[str, int] = {}
    for node in seen:
        counts[nodes[node]] = counts.get(nodes[node], 0) + 1
    return counts


# ---- caching and incremental reruns ----------------------------------------------------


def test_finished_target_reruns_nothing(finished):
    assert planned_jobs(finished, TARGET, "--configfile", "tiny.yaml") == {}


def test_changing_a_training_setting_reruns_training_and_exactly_its_downstream(finished):
    name = _write_config(finished, "tiny_lr.yaml", "ch4.partial.train.optimiser.lr", 0.02)
    planned = planned_jobs(finished, TARGET, "--configfile", name)
    nodes, edges = _job_graph(finished, TARGET, "--configfile", name)
    expected = _downstream_counts(nodes, edges, "train_partial_classifier")
    assert planned == expected
    assert expected["train_partial_classifier"] == 2 and "figure_4_2a" in expected
    assert "dataset" not in planned and "encode_partial_test" not in planned


def test_editing_a_plotting_script_reruns_only_its_figure(finished):
    script = finished / "scripts/ch4/partial/figure_4_2a.py"
    original, stat = script.read_text(), script.stat()
    try:
        script.write_text(original + "\n# a new line style\n")
        assert planned_jobs(finished, TARGET, "--configfile", "tiny.yaml") == {"figure_4_2a": 1, TARGET: 1}
    finally:
        # Snakemake tells script edits by modification time, so restore that too.
        script.write_text(original)
        os.utime(script, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert planned_jobs(finished, TARGET, "--configfile", "tiny.yaml") == {}


# ---- the HTML report ---------------------------------------------------------------------


def _report(work: Path, name: str = "report.html") -> dict:
    snakemake(work, TARGET, "--configfile", "tiny.yaml", "--report", name)
    text = (work / name).read_text()

    def js_var(element, var):
        # Snakemake embeds each piece of the report as JSON in a <script id=...> element.
        match = re.search(rf'<script id="{element}">\s*var {var} = (.*?);\s*</script>', text, re.S)
        assert match, f"no {var} in the report"
        return json.loads(match.group(1))

    return {"results": js_var("results", "results"), "categories": js_var("categories", "categories"),
            "description": html.unescape(js_var("workflow-desc", "workflow_desc"))}


@pytest.fixture(scope="module")
def report(finished):
    return _report(finished)


def test_report_holds_every_table_and_figure_of_the_run(finished, report):
    made = {str(p.relative_to(finished)) for p in (finished / "results/tiny").glob("tables/*.csv")}
    made |= {str(p.relative_to(finished)) for p in (finished / "results/tiny").glob("figures/*.png")}
    assert made == set(report["results"])
    assert {"results/tiny/tables/table_4_1.csv", "results/tiny/figures/figure_4_2a.png"} <= made


def test_report_groups_results_by_chapter_and_kind(report):
    chapter = "Chapter 4: Vision with Compressive Measurements"
    assert set(report["categories"]) == {chapter}
    assert report["categories"][chapter]["Tables"] == ["results/tiny/tables/table_4_1.csv"]
    assert report["categories"][chapter]["Figures"] == ["results/tiny/figures/figure_4_2a.png"]


def test_report_captions_cite_the_thesis_numbers(report):
    table = report["results"]["results/tiny/tables/table_4_1.csv"]
    figure = report["results"]["results/tiny/figures/figure_4_2a.png"]
    assert "Thesis Table 4.1</strong> (Sec. 4.4.1" in table["caption"]
    assert "preset <tt" in table["caption"] or "preset <code" in table["caption"]
    assert table["labels"] == {"thesis": "Table 4.1", "name": "table_4_1"}
    # Sub-figure (a) has no caption file of its own: it gets Figure 4.2's.
    assert "Thesis Figure 4.2</strong>" in figure["caption"]
    assert figure["labels"]["thesis"] == "Figure 4.2a"


def test_report_includes_the_run_configuration(report, finished):
    text = report["description"]
    assert "Configuration</h" in text
    block = re.search(r"<pre[^>]*>(.*?)</pre>", text, re.S)
    assert block, "no configuration block in the workflow description"
    shown = json.loads(html.unescape(block.group(1)))
    # The merged configuration: tiny.yaml's values over config.yaml's, every key present,
    # with the schema's defaults filled in.
    base = validate_config(yaml.safe_load((finished / "config.yaml").read_text()))
    assert set(shown) == set(base)
    assert shown["preset"] == "tiny"
    assert shown["ch4"]["partial"]["train"]["batch_size"] == 48
    assert shown["ch4"]["partial"]["train"]["optimiser"] == base["ch4"]["partial"]["train"]["optimiser"]


def test_a_new_caption_file_is_picked_up_without_code_changes(finished):
    caption = finished / "workflow/report/captions/figure_4_2a.rst"
    caption.write_text("Sub-figure (a) of **Thesis Figure 4.2**, described on its own.\n")
    try:
        figure = _report(finished, "report2.html")["results"]["results/tiny/figures/figure_4_2a.png"]
    finally:
        caption.unlink()
    assert "described on its own" in figure["caption"]


# ---- GPU pinning -------------------------------------------------------------------------

_HOLDER = """
import sys
from flatscape.pipeline.gpus import claim_gpu
print(claim_gpu(int(sys.argv[1]), sys.argv[2]), flush=True)
sys.stdin.read()
"""


def _holder(n: int, lock_dir: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(n), str(lock_dir)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=env)
    return proc, int(proc.stdout.readline())


def test_concurrent_jobs_are_pinned_to_distinct_gpus_and_a_killed_job_frees_its_card(tmp_path):
    first, first_index = _holder(2, tmp_path)
    try:
        second, second_index = _holder(2, tmp_path)
        assert {first_index, second_index} == {0, 1}
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        third, third_index = _holder(2, tmp_path)
        assert third_index == first_index  # the killed job's card is free again
        for proc in (second, third):
            proc.stdin.close()
            proc.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()


def test_a_job_that_sees_one_gpu_uses_it_without_locking(tmp_path):
    assert claim_gpu(1, tmp_path) == 0
    assert not list(tmp_path.iterdir())
    release_gpu()


def test_gpus_are_locked_by_card_not_by_position(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,1")
    try:
        assert claim_gpu(2, tmp_path) == 0
        assert [p.name for p in tmp_path.iterdir()] == ["gpu-3.lock"]
    finally:
        release_gpu()


# ---- faults ------------------------------------------------------------------------------


def _snakemake_popen(work: Path, *args: str) -> subprocess.Popen:
    cmd = [SNAKEMAKE, "--cores", "2", "--directory", str(work), "--snakefile", str(work / "Snakefile"), *args]
    # Its own process group, so the kill reaches the job it runs and nothing else; output
    # goes to a file, which (unlike an unread pipe) never blocks it.
    with open(work / "snakemake_popen.out", "w") as out:
        return subprocess.Popen(cmd, cwd=work, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def test_killed_training_resumes_from_its_checkpoint_with_identical_metrics(finished, tmp_path):
    work = _copy(finished, tmp_path / "killed")
    uninterrupted = json.loads((finished / MODELS / "vgg16.json").read_text())
    for suffix in ("pt", "json"):
        (work / MODELS / f"vgg16.{suffix}").unlink()
    checkpoint = work / MODELS / "vgg16.ckpt"
    target = f"{MODELS}/vgg16.pt"
    proc = _snakemake_popen(work, target, "--configfile", "tiny.yaml")
    try:
        deadline = time.monotonic() + 240
        while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert checkpoint.exists(), "no checkpoint appeared before the job ended"
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert not (work / MODELS / "vgg16.pt").exists(), "training finished before the kill; nothing was tested"
    epoch_at_kill = torch.load(checkpoint, weights_only=True)["epoch"]
    assert 1 <= epoch_at_kill < uninterrupted["epochs_run"]

    # A killed Snakemake leaves its lock behind; the documented recovery is unlock, then rerun.
    snakemake(work, target, "--configfile", "tiny.yaml", "--unlock")
    snakemake(work, target, "--configfile", "tiny.yaml", "--rerun-incomplete")
    log = (work / "logs/tiny/ch4/partial/train_vgg16.log").read_text()
    assert re.search(rf"resumed from \S+vgg16.ckpt at epoch {epoch_at_kill}\b", log)
    resumed = json.loads((work / MODELS / "vgg16.json").read_text())
    for key in ("epochs_run", "train_loss", "train_accuracy", "test_loss", "test_accuracy"):
        assert resumed[key] == pytest.approx(uninterrupted[key], rel=1e-6, abs=1e-9), key
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in uninterrupted["history"]], rel=1e-6)


def test_nan_loss_fails_loudly_with_its_log_while_independent_jobs_finish(finished, tmp_path):
    work = _copy(finished, tmp_path / "nan")
    name = _write_config(work, "tiny_nan.yaml", "ch4.partial.train.optimiser.lr", 1e38)
    encoded = work / "results/tiny/ch4/partial/test/ratio1.0.npz"
    encoded.unlink()  # an independent job that must still run
    proc = snakemake(work, f"{MODELS}/vgg16.pt", str(encoded.relative_to(work)), "--configfile", name,
                     "--keep-going", "--retries", "1", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "FloatingPointError: non-finite training loss (nan) at epoch 1" in out
    assert re.search(r"Error in rule train_partial_classifier:.*?log: logs/tiny/ch4/partial/train_vgg16\.log", out, re.S)
    assert (work / "logs/tiny/ch4/partial/train_vgg16.log").exists()
    assert encoded.exists()
    # The retry asked for twice the memory and wall time (mem_mb/runtime scale with attempt).
    assert re.search(r"mem_mb=16000\b", out) and re.search(r"runtime=1200\b", out)


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    "artifact, target, message",
    [
        ("results/tiny/datasets/digits.npz", "results/tiny/ch4/partial/test/ratio1.0.npz",
         r"digits\.npz: truncated or corrupted array file"),
        (f"{MODELS}/vgg16.pt", "results/tiny/ch4/partial/eval/vgg16/ratio1.0.json",
         r"vgg16\.pt: truncated or corrupted checkpoint"),
        (f"{MODELS}/vgg16.ckpt", f"{MODELS}/vgg16.pt", r"vgg16\.ckpt: truncated or corrupted checkpoint"),
    ],
    ids=["dataset", "model", "resume-checkpoint"],
)
def test_truncated_artifact_is_detected_with_a_clear_error(finished, tmp_path, artifact, target, message):
    work = _copy(finished, tmp_path / "damaged")
    path = work / artifact
    if path.suffix == ".ckpt":  # a resume checkpoint left by a killed job, written non-atomically elsewhere
        save_checkpoint(path, {"model": {"w": torch.zeros(4096)}, "epoch": 1})
        for suffix in ("pt", "json"):
            (work / MODELS / f"vgg16.{suffix}").unlink()
    _truncate(path)
    time.sleep(0.01)
    proc = snakemake(work, target, "--configfile", "tiny.yaml", check=False)
    assert proc.returncode != 0
    logs = "".join(p.read_text() for p in (work / "logs/tiny").rglob("*.log"))
    assert re.search(message, logs + proc.stdout + proc.stderr), message
    assert not (work / target).exists()
