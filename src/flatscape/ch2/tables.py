"""Chapter 2's tables: the thesis's printed values and the frames built from a study.

The study (``flatscape.ch2.studies.gradient_study``) has one row per (rule, h, p);
everything here reshapes or scores it, beside the values the thesis prints.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from flatscape.ch2.model import support_hypothesis_holds
from flatscape.ch2.settings import Table21Settings

# The thesis's printed values, for the comparison columns only (Table 2.1: pairs
# (||E[dL/dW_i]||, h^(p-1)); Table 2.2: percentage of the initial distance covered).
THESIS_TABLE_2_1: dict[tuple[int, float], tuple[float, float]] = {
    (256, 0.01): (0.0137, 0.0041), (256, 0.02): (0.0138, 0.0044), (256, 0.05): (0.0126, 0.0052),
    (256, 0.1): (0.0095, 0.0068), (256, 0.2): (0.0284, 0.0118), (256, 0.3): (0.0464, 0.0206),
    (256, 0.5): (0.0343, 0.0625),
    (512, 0.01): (0.0058, 0.0021), (512, 0.02): (0.0058, 0.0022), (512, 0.05): (0.0054, 0.0027),
    (512, 0.1): (0.0071, 0.0036), (512, 0.2): (0.0104, 0.0068), (512, 0.3): (0.0214, 0.0127),
    (512, 0.5): (0.0028, 0.0442),
    (1024, 0.01): (0.0025, 0.0010), (1024, 0.02): (0.0024, 0.0011), (1024, 0.05): (0.0026, 0.0014),
    (1024, 0.1): (0.0079, 0.0020), (1024, 0.2): (0.0078, 0.0039), (1024, 0.3): (0.0099, 0.0078),
    (1024, 0.5): (0.00, 0.0313),
    (2048, 0.01): (0.0011, 0.0005), (2048, 0.02): (0.0012, 0.0006), (2048, 0.05): (0.0025, 0.0007),
    (2048, 0.1): (0.0031, 0.0010), (2048, 0.2): (0.0032, 0.0022), (2048, 0.3): (0.0036, 0.0048),
    (2048, 0.5): (0.00, 0.0221),
    (4096, 0.01): (0.0006, 0.0003), (4096, 0.02): (0.0012, 0.0003), (4096, 0.05): (0.0013, 0.0004),
    (4096, 0.1): (0.0026, 0.0006), (4096, 0.2): (0.0020, 0.0013), (4096, 0.3): (0.0008, 0.0030),
    (4096, 0.5): (0.00, 0.0156),
}
THESIS_TABLE_2_2: dict[tuple[int, float], float] = {
    (256, 0.05): 97.7, (256, 0.1): 96.9,
    (512, 0.05): 98.6, (512, 0.1): 98.2,
    (1024, 0.05): 99.0, (1024, 0.1): 98.8,
    (2048, 0.05): 99.2, (2048, 0.1): 99.0,
    (4096, 0.05): 99.4, (4096, 0.1): 99.2,
}

_TABLE_2_1_COLUMNS = [
    "h", "p", "k", "coherence", "xi", "rule", "bias", "grad_norm_of_mean", "grad_mean_of_norms", "grad_fro_over_h",
    "thesis_grad", "h_pow_p_minus_1", "thesis_h_pow_p_minus_1", "ratio_to_thesis",
]
_SUPPORT_COLUMNS = [
    "h", "p", "k", "rule", "bias", "hypothesis_holds", "on_support_active", "off_support_silent", "exact_support",
    "theorem_bound", "active_fraction",
]


def table_2_1_frame(study: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Table 2.1 for one bias reading, thesis values beside ours; ``ratio_to_thesis``
    divides ``grad_norm_of_mean`` by the thesis's printed norm (nan where it printed 0.00)."""
    part = study[study["rule"] == rule].copy()
    thesis = part["thesis_grad"].where(part["thesis_grad"] > 0)
    part["ratio_to_thesis"] = part["grad_norm_of_mean"] / thesis
    return part[_TABLE_2_1_COLUMNS].reset_index(drop=True)


def support_recovery_frame(study: pd.DataFrame, rule: str, *, a: float = 1.0, b: float = 10.0) -> pd.DataFrame:
    """The support-recovery extension for one bias reading: empirical rates beside Theorem 2.3.1's bound."""
    part = study[study["rule"] == rule].copy()
    part["hypothesis_holds"] = [support_hypothesis_holds(h, p, c, a, b) for h, p, c in zip(part["h"], part["p"], part["coherence"])]
    return part[_SUPPORT_COLUMNS].reset_index(drop=True)


def bias_reading_summary(study: pd.DataFrame) -> pd.DataFrame:
    """How well each bias reading reproduces Table 2.1, one row per (rule, statistic).

    Over the cells where the thesis prints a non-zero norm: the median |log10(ours /
    thesis)|, how many cells agree within a factor 2, and the Spearman rank correlation
    (does the reading reproduce the table's shape). As a diagnostic only (nothing is
    rescaled anywhere else): the geometric-mean ratio ours/thesis and the median
    |log10| left after dividing it out (nan when the reading is exactly 0 in a cell
    the thesis prints as non-zero). Over the cells the thesis prints as 0.00: how
    many of ours are below 0.005 (which would also print as 0.00).
    """
    rows = []
    for rule, part in study.groupby("rule", sort=False):
        nonzero, zero = part[part["thesis_grad"] > 0], part[part["thesis_grad"] == 0]
        for stat in ("grad_norm_of_mean", "grad_mean_of_norms", "grad_fro_over_h"):
            log_ratio = np.log10(nonzero[stat].clip(lower=1e-12) / nonzero["thesis_grad"])
            # a reading that is dead where the thesis is not has no meaningful common scale
            mean_log = float(log_ratio.mean()) if len(log_ratio) and (nonzero[stat] > 0).all() else math.nan
            varies = nonzero[stat].nunique() > 1
            rows.append(
                {
                    "rule": rule, "statistic": stat,
                    "median_abs_log10_ratio": float(np.median(np.abs(log_ratio))) if len(log_ratio) else math.nan,
                    "cells_within_2x": int((np.abs(log_ratio) <= math.log10(2.0)).sum()),
                    "nonzero_cells": len(nonzero),
                    "spearman": float(nonzero[stat].corr(nonzero["thesis_grad"], method="spearman")) if varies else math.nan,
                    "zero_cells_matched": int((zero[stat] < 0.005).sum()),
                    "zero_cells": len(zero),
                    "geometric_mean_ratio": 10**mean_log,
                    "median_abs_log10_after_scale": float(np.median(np.abs(log_ratio - mean_log))) if len(log_ratio) else math.nan,
                }
            )
    return pd.DataFrame(rows).sort_values(["statistic", "median_abs_log10_ratio"]).reset_index(drop=True)


def closest_reading_per_cell(study: pd.DataFrame, stat: str = "grad_norm_of_mean") -> pd.DataFrame:
    """For every (h, p): the thesis's value, every reading's value side by side, and the
    reading closest to the thesis in |log10| (a 0.00 cell is matched by every reading
    below 0.005, all listed, joined by '|')."""
    wide = study.pivot_table(index=["h", "p"], columns="rule", values=stat).reset_index()
    thesis = study.groupby(["h", "p"])["thesis_grad"].first().reset_index()
    wide = thesis.merge(wide, on=["h", "p"])
    rules = [c for c in wide.columns if c not in ("h", "p", "thesis_grad")]

    def distance(value: float, target: float) -> float:
        if target == 0:
            return 0.0 if value < 0.005 else math.inf
        return abs(math.log10(max(value, 1e-12) / target))

    best, best_ratio = [], []
    for _, row in wide.iterrows():
        scores = {r: distance(row[r], row["thesis_grad"]) for r in rules}
        lowest = min(scores.values())
        winners = [r for r in rules if scores[r] == lowest and math.isfinite(lowest)]
        best.append("|".join(winners) if winners else "none")  # ties (0.00 cells) list every match
        best_ratio.append(row[winners[0]] / row["thesis_grad"] if winners and row["thesis_grad"] > 0 else math.nan)
    wide["closest_rule"], wide["closest_ratio"] = best, best_ratio
    return wide


def table_2_1_captions(settings: Table21Settings) -> dict[str, str]:
    """The caption of every table ``studies.table_2_1`` returns, by its name."""
    return {
        "table": f"Table 2.1: average column norm of the gradient {settings.num_points} points columnwise delta/2 from A* (bias rule '{settings.bias_rule}'), thesis values beside",
        "support": f"Support recovery at the hidden layer (Theorem 2.3.1) at the Table 2.1 points, bias rule '{settings.bias_rule}'",
        "readings": "Table 2.1 under every bias reading studied (same data and points)",
        "summary": "How well each bias reading reproduces Table 2.1",
        "closest": "Table 2.1 cell by cell: every bias reading beside the thesis, and the closest",
        "coherence": "Measured coherence max |<A_i, A_j>| and xi = -log(coherence)/log(h)",
    }
