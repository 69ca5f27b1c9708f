"""The claims summary (flatscape.pipeline.claims) on small tables written by the real
table functions, so a change of a table's columns breaks these tests, not the report."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from flatscape.ch3.tables import add_conventions, table_3_7
from flatscape.ch4.detection.tables import table_4_2
from flatscape.ch4.partial.tables import table_4_1
from flatscape.pipeline.claims import (
    CHECKS, FAILS, HOLDS, NO_THESIS_VALUE, NOT_RUN, claims_table, detection_with_pce, large_batch_sharper, ours_above_plain,
    recovery_rates, riemannian_invariant, write_claims,
)


def _runs(small: float, large: float) -> pd.DataFrame:
    rows = []
    for batch, value in ((200, small), (5000, large)):
        for seed in range(2):
            rows.append({"dataset": "mnist", "network": "mnist_fc", "row": "mnist-mnist_fc", "protocol": "ce_stop",
                         "batch_size": batch, "seed": seed, "epochs_run": 10, "train_loss": 1e-6, "flatness_loss": 1e-6,
                         "reached_threshold": True, "test_accuracy": 0.95, "riemannian": value * (1 + seed / 10),
                         "euclidean": value / 100, "normalised": value * 1e-6})  # fmt: skip
    return add_conventions(pd.DataFrame(rows))


def _table_4_1(ours_low: float, plain_low: float) -> pd.DataFrame:
    records = [{"method": m, "ratio": r, "accuracy": a}
               for m, accs in (("VGG-16", (0.9, plain_low, plain_low)), ("VGG-16-Ours", (0.8, ours_low, ours_low)))
               for r, a in zip(("1.0", "0.5", "0.1"), accs)]  # fmt: skip
    return table_4_1(records, ["1.0", "0.5", "0.1"])


def _invariance(riemannian_change: float, euclidean_ratio: float) -> pd.DataFrame:
    rows = []
    for net in ("F1", "C1"):
        for lam, rie, euc in (("(1, 1, 1)", 0.0, 1.0), ("(5, 4, 1/20)", riemannian_change, euclidean_ratio)):
            rows.append({"network": net, "lambda": lam, "euclidean_ratio": euc, "riemannian_relative_difference": rie})
    return pd.DataFrame(rows)


def _table_2_2(covered: float, h: int = 256) -> pd.DataFrame:
    return pd.DataFrame([{"rule": "zero", "h": h, "p": 0.05, "covered_percent": covered,
                          "thesis_covered_percent": 97.7 if h == 256 else math.nan}])  # fmt: skip


def _table_4_2(rate_small: float) -> pd.DataFrame:
    records = []
    for fraction, rate in ((0.125, rate_small), (1.0, 1.0)):
        for i in range(10):
            records.append({"kind": "target", "fraction": fraction, "true_class": "ram", "detected": i < rate * 10})
    return table_4_2(pd.DataFrame(records), ["ram"])


def test_large_batch_sharper_reads_the_ratio_and_the_thesis_ratio():
    (row,) = large_batch_sharper(table_3_7(_runs(small=10.0, large=40.0)))
    assert row["holds"] == HOLDS and "MNIST / Fully-Connected" in row["claim"]
    assert row["this_run"] == "ratio 4"  # (40 * 1.05) / (10 * 1.05)
    assert row["thesis"] == f"ratio {32.99 / 0.00086:.3g}"
    (row,) = large_batch_sharper(table_3_7(_runs(small=40.0, large=10.0)))
    assert row["holds"] == FAILS


def test_riemannian_invariance_needs_both_halves_of_the_claim():
    thesis = pd.DataFrame({"thesis_relative_difference": [1.7e-7, 5.1e-6]})
    rows = riemannian_invariant(_invariance(1e-12, 7.0), thesis)
    assert [r["holds"] for r in rows] == [HOLDS, HOLDS] and "5.1e-06" in rows[0]["thesis"]
    assert {r["holds"] for r in riemannian_invariant(_invariance(1e-2, 7.0), thesis)} == {FAILS}  # Riemannian moved
    assert {r["holds"] for r in riemannian_invariant(_invariance(1e-12, 1.0), None)} == {FAILS}  # Euclidean did not


def test_ours_above_plain_at_low_ratios_only():
    (row,) = ours_above_plain(_table_4_1(ours_low=0.6, plain_low=0.1))
    assert row["holds"] == HOLDS
    assert row["this_run"] == "0.5: 0.6 vs 0.1; 0.1: 0.6 vs 0.1"
    assert row["thesis"] == "0.5: 0.8 vs 0.11; 0.1: 0.71 vs 0.13"  # the thesis rows the table prints
    assert ours_above_plain(_table_4_1(ours_low=0.1, plain_low=0.6))[0]["holds"] == FAILS


def test_ours_above_plain_without_low_ratios_is_not_run():
    records = [{"method": m, "ratio": "1.0", "accuracy": 0.9} for m in ("VGG-16", "VGG-16-Ours")]
    (row,) = ours_above_plain(table_4_1(records, ["1.0"]))
    assert row["holds"] == NOT_RUN


def test_recovery_rates_against_the_thesis_or_its_lowest_value():
    assert recovery_rates(_table_2_2(95.0))[0]["holds"] == HOLDS  # 97.7 - 5
    assert recovery_rates(_table_2_2(90.0))[0]["holds"] == FAILS
    both = pd.concat([_table_2_2(95.0), _table_2_2(80.0, h=24)])  # h=24: no thesis value, compared with 97.7
    (row,) = recovery_rates(both)
    assert row["holds"] == FAILS and "over 2 (h, p)" in row["this_run"]
    assert recovery_rates(_table_2_2(95.0, h=24))[0]["holds"] == NO_THESIS_VALUE


def test_detection_rate_per_pce_fraction():
    (row,) = detection_with_pce(_table_4_2(0.9))  # thesis: Ram 0.95 at 12.5%
    assert row["holds"] == HOLDS and row["this_run"] == "12.5%: 0.9; 100%: 1"
    assert row["thesis"] == "12.5%: 0.95; 100%: 0.98"
    assert detection_with_pce(_table_4_2(0.5))[0]["holds"] == FAILS


def test_missing_tables_give_a_not_run_row_per_claim(tmp_path):
    table = claims_table(tmp_path)
    assert len(table) == len(CHECKS)
    assert (table["holds"] == NOT_RUN).all()
    assert table["claim"].str.len().min() > 0 and table["source"].str.endswith(".csv").all()


def test_a_partial_results_folder_mixes_checked_and_not_run_rows(tmp_path):
    table_3_7(_runs(10.0, 40.0)).to_csv(tmp_path / "table_3_7.csv", index=False)
    _table_4_1(0.6, 0.1).to_csv(tmp_path / "table_4_1.csv", index=False)
    paths = [tmp_path / f"claims.{ext}" for ext in ("csv", "md", "html")]
    table = write_claims(tmp_path, *paths)
    assert list(table["holds"]) == [NOT_RUN, NOT_RUN, HOLDS, HOLDS, NOT_RUN]
    assert pd.read_csv(paths[0]).shape == table.shape
    page = paths[2].read_text()
    assert page.count("<tr") == len(table) + 1 and "not run in this preset" in page


def test_a_file_as_the_tables_folder_is_an_error(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(NotADirectoryError, match="tables_dir"):
        claims_table(tmp_path / "f")


def test_every_table_a_check_reads_is_an_input_of_the_claims_rule():
    from flatscape.pipeline.claims import INPUT_TABLES

    assert {needed for _, _, needed, _ in CHECKS} | {"table_3_2.csv", "table_3_3.csv"} == set(INPUT_TABLES)
