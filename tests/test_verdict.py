"""Table 3.7's row-by-row verdict (issue 29) from kept result folders: ratios, steps, the deepest
common CE level, the verdict line, the data-size table and figure."""

import math

import pandas as pd
import pytest
import yaml

from flatscape.ch3 import verdict

ADAM = {"name": "adam", "lr": 1e-3, "momentum": 0.9, "weight_decay": 0.0}


def _row(arm, protocol, n):
    return {"dataset": "mnist", "network": "mnist_fc", "arm": arm, "protocol": protocol, "bias": False, "seeds": 2,
            "train_size": n, "flatness_samples": n, "eps": 1e-3,
            "small": {"batch_size": 200, "epochs": 200, "optimiser": ADAM},
            "large": {"batch_size": 5000, "epochs": 200, "optimiser": ADAM}}  # fmt: skip


def _points(row, protocol, lam_small, lam_large, levels_small, levels_large, epochs=(200, 200)):
    """Path-table rows (new format) of 2 seeds per batch size: endpoints and the levels each reached."""
    out = []
    for batch_size, lam, levels, epoch in ((200, lam_small, levels_small, epochs[0]), (5000, lam_large, levels_large, epochs[1])):
        for seed in (0, 1):
            for t in (1e-2, 1e-4, 1e-6):
                reached = t in levels
                out.append({"dataset": "mnist", "network": "mnist_fc", "row": row, "protocol": protocol,
                            "batch_size": batch_size, "seed": seed, "point": f"CE < {t:.0e}", "threshold": t,
                            "reached": reached, "epoch": 10 if reached else math.nan, "train_loss": t / 2 if reached else math.nan,
                            "riemannian": lam * (1 / t) ** 0.5 if reached else math.nan})  # fmt: skip
            out.append({"dataset": "mnist", "network": "mnist_fc", "row": row, "protocol": protocol, "batch_size": batch_size,
                        "seed": seed, "point": "end", "threshold": math.nan, "reached": True, "epoch": epoch,
                        "train_loss": 1e-8 if batch_size == 200 else 1e-5, "riemannian": lam * (1 + 0.1 * seed)})  # fmt: skip
    return out


@pytest.fixture
def kept(tmp_path):
    config = {"ch3": {"minima": {"stop_loss": 1e-6, "rows": [_row(None, "ce_stop", 1000), _row("fixed200", "fixed_epochs", 2000)]}}}
    (tmp_path / "preset.yaml").write_text(yaml.safe_dump(config))
    folder = tmp_path / "kept"
    folder.mkdir()
    rows = (_points("mnist-mnist_fc", "ce_stop", 1.0, 5.0, {1e-2, 1e-4, 1e-6}, {1e-2, 1e-4}, epochs=(40, 200))
            + _points("mnist-mnist_fc-fixed200", "fixed_epochs", 0.001, 20.0, {1e-2, 1e-4, 1e-6}, {1e-2}))  # fmt: skip
    pd.DataFrame(rows).to_csv(folder / "table_3_path_runs.csv", index=False)
    (tmp_path / "sources.yaml").write_text(yaml.safe_dump([{"folder": "kept", "config": "preset.yaml", "machine": "a test"}]))
    return tmp_path


def test_verdict_rows_give_ratios_steps_and_the_deepest_common_level(kept):
    [source] = verdict.load_sources(kept / "sources.yaml")
    table = verdict.verdict_table(verdict.load_points(source)).set_index("row")
    stop, fixed = table.loc["mnist-mnist_fc"], table.loc["mnist-mnist_fc-fixed200"]
    assert stop["train_size"] == 1000 and fixed["train_size"] == 2000
    assert stop["ratio"] == pytest.approx(5.0) and fixed["ratio"] == pytest.approx(20_000.0)
    # steps: epochs x ceil(N / batch)
    assert stop["steps_small"] == 40 * 5 and stop["steps_large"] == 200 * 1
    assert fixed["steps_small"] == 200 * 10 and fixed["steps_large"] == 200 * 1
    # the deepest level every run of both batch sizes crossed; the synthetic lambdas there are lam / sqrt(t)
    assert stop["deepest_common_level"] == 1e-4 and stop["ratio_at_deepest_common_level"] == pytest.approx(5.0)
    assert fixed["deepest_common_level"] == 1e-2
    assert stop["thesis_ratio"] == pytest.approx(32.99 / 0.00086)
    assert stop["verdict"].startswith("misses: 7,67") and "below" in stop["verdict"]
    assert fixed["verdict"].startswith("accounts for the thesis's ratio (x0.52")


def test_verdict_line_bounds():
    assert verdict.verdict_line(3 * 100.0, 100.0).startswith("accounts")
    assert verdict.verdict_line(100.0 / 3, 100.0).startswith("accounts")
    assert verdict.verdict_line(301.0, 100.0) == "misses: 3.01x above the thesis's ratio"
    assert verdict.verdict_line(math.nan, 100.0).startswith("no ratio")


def test_a_row_the_preset_does_not_hold_is_named(kept):
    path = kept / "kept" / "table_3_path_runs.csv"
    df = pd.read_csv(path)
    df.loc[0, "row"] = "mnist-mnist_fc-other"
    df.to_csv(path, index=False)
    [source] = verdict.load_sources(kept / "sources.yaml")
    with pytest.raises(ValueError, match=r"rows \['mnist-mnist_fc-other'\] are not in .*preset.yaml"):
        verdict.load_points(source)


def test_an_older_path_table_takes_its_endpoints_from_the_runs_table(kept):
    path = pd.read_csv(kept / "kept" / "table_3_path_runs.csv")
    ends = path[path["point"] == "end"].rename(columns={"epoch": "epochs_run"})
    path[path["point"] != "end"].drop(columns=["row", "point", "protocol"]).to_csv(kept / "kept" / "table_3_path_runs.csv", index=False)
    ends[ends["row"] == "mnist-mnist_fc"].drop(columns=["row"]).to_csv(kept / "kept" / "table_3_7_runs.csv", index=False)
    [source] = verdict.load_sources(kept / "sources.yaml")
    points = verdict.load_points(source)
    assert set(points["row"]) == {"mnist-mnist_fc"}  # without row names, every point belongs to the plain row
    table = verdict.verdict_table(points)
    assert table["ratio"].iloc[0] == pytest.approx(5.0)


def test_main_writes_the_verdict_and_the_datasize_table_and_figure(kept, capsys):
    (kept / "out" / "kept").mkdir(parents=True)
    verdict.main([str(kept / "sources.yaml"), str(kept / "out"), "--datasize", "kept"])
    csv = pd.read_csv(kept / "out" / "table37_verdict.csv")
    assert len(csv) == 2 and (kept / "out" / "table37_verdict.md").read_text().count("| MNIST-FC") == 0
    size = pd.read_csv(kept / "out" / "kept" / "table_datasize.csv")
    assert list(size["train_size"]) == [1000, 2000]
    assert (kept / "out" / "kept" / "figure_datasize.png").stat().st_size > 10_000
    assert "accounts for" in capsys.readouterr().out
