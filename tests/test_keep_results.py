"""scripts/tools/keep_results.py: a run's tables, figures and job times kept with its command,
machine and wall time; weights never copied; a run without benchmark files refused before
anything is written."""

from __future__ import annotations

import runpy

import pandas as pd
import pytest
from conftest import REPO

keep = runpy.run_path(str(REPO / "scripts/tools/keep_results.py"), run_name="keep_results")

BENCH = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n{s}\t0:00:{s}\t100\t1\t1\t1\t0\t0\t50\t{c}\n"


def _run(tmp_path, with_bench=True):
    res = tmp_path / "results/p"
    (res / "tables").mkdir(parents=True)
    (res / "figures").mkdir()
    (res / "tables/table_3_7.md").write_text("| a |\n")
    (res / "tables/table_3_7_runs.csv").write_text("a\n1\n")
    (res / "tables/other.md").write_text("not asked for\n")
    (res / "tables/table_3_7.pt").write_bytes(b"weights")
    (res / "figures/figure_3_path.png").write_bytes(b"png")
    if with_bench:
        bench = tmp_path / "benchmarks/p/ch3/minima"
        bench.mkdir(parents=True)
        (bench / "train_mnist-x_small_seed0.tsv").write_text(BENCH.format(s=30, c=25))
        (bench / "train_mnist-x_large_seed0.tsv").write_text(BENCH.format(s=10, c=8))
        (bench / "measure_path_mnist-x_small_seed0_ce1e-02.tsv").write_text(BENCH.format(s=5, c=4))
    return tmp_path / "kept"


def test_kept_files_times_and_readme(tmp_path):
    dest = _run(tmp_path)
    keep["main"](["p", str(dest), "--root", str(tmp_path), "--command", "snakemake --cores 2 ch3",
                  "--machine", "a 2-core CPU", "--started", "2026-12-06T10:00", "--finished", "2026-12-06T12:30",
                  "--tables", "table_3_7*", "--note", "load 2"])  # fmt: skip
    assert sorted(p.name for p in dest.iterdir()) == [
        "README.md", "figure_3_path.png", "job_times.csv", "table_3_7.md", "table_3_7_runs.csv"]  # fmt: skip
    readme = (dest / "README.md").read_text()
    assert "    snakemake --cores 2 ch3" in readme and "a 2-core CPU" in readme and "load 2" in readme
    assert "wall time 2.50 h; 3 jobs" in readme
    assert "| train | 2 | 40 | 33 |" in readme and "| measure_path | 1 | 5 | 4 |" in readme
    times = pd.read_csv(dest / "job_times.csv")
    assert times["cpu_s"].sum() == 37


def test_a_run_without_benchmark_files_is_refused_before_anything_is_written(tmp_path):
    dest = _run(tmp_path, with_bench=False)
    with pytest.raises(SystemExit, match="no benchmark files"):
        keep["main"](["p", str(dest), "--root", str(tmp_path), "--command", "c", "--machine", "m",
                      "--started", "2026-12-06T10:00"])  # fmt: skip
    assert not dest.exists()


def test_a_pattern_that_matches_nothing_is_named(tmp_path):
    dest = _run(tmp_path)
    with pytest.raises(SystemExit, match="table_9"):
        keep["main"](["p", str(dest), "--root", str(tmp_path), "--command", "c", "--machine", "m",
                      "--started", "2026-12-06T10:00", "--tables", "table_9*"])  # fmt: skip


def test_jobs_globs_keep_one_chapters_times(tmp_path):
    dest = _run(tmp_path)
    other = tmp_path / "benchmarks/p/ch2"
    other.mkdir(parents=True)
    (other / "table_2_2.tsv").write_text(BENCH.format(s=50, c=45))
    keep["main"](["p", str(dest), "--root", str(tmp_path), "--command", "c", "--machine", "m",
                  "--started", "2026-12-06T10:00", "--finished", "2026-12-06T10:01", "--jobs", "ch2/*"])  # fmt: skip
    times = pd.read_csv(dest / "job_times.csv")
    assert list(times["job"]) == ["ch2/table_2_2"]
    with pytest.raises(SystemExit, match="matching ch9"):
        keep["main"](["p", str(tmp_path / "k2"), "--root", str(tmp_path), "--command", "c", "--machine", "m",
                      "--started", "2026-12-06T10:00", "--jobs", "ch9/*"])  # fmt: skip
