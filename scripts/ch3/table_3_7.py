"""Table 3.7 (mean ± std, thesis values beside ours), every run's numbers, and the Kendall tau tables."""

from pathlib import Path

from landscapes.pipeline.io import write_table
from landscapes.ch3.minima import collect_runs, kendall_table, table_3_7, table_3_7_runs
from landscapes.pipeline.runtime import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
out = snakemake.output  # noqa: F821
runs = collect_runs(list(zip(snakemake.input.metrics, snakemake.input.flatness)))  # noqa: F821
log.info("%d runs; threshold reached in %d", len(runs), int(runs["reached_threshold"].fillna(False).sum()))
log.info("largest relative change of the Riemannian value under T_lambda: %.3g", runs["riemannian_rescale_change"].max())


def stem(key):
    return Path(out[f"{key}_csv"]).with_suffix("")


write_table(table_3_7(runs), stem("table_3_7"),
            caption="Table 3.7: Test accuracy and spectral norm of the Riemannian Hessian at minima (mean ± std)")  # fmt: skip
write_table(table_3_7_runs(runs), stem("runs"), float_format="{:.6g}",
            caption="Every run behind Table 3.7 and Figures 3.3-3.6")  # fmt: skip
write_table(kendall_table(runs), stem("kendall"), float_format="{:.3f}",
            caption="Kendall tau of each flatness measure against test accuracy and generalisation gap (beyond the thesis)")  # fmt: skip
write_table(kendall_table(runs, rescaled=True), stem("kendall_rescaled"), float_format="{:.3f}",
            caption="The same after a random rescaling T_lambda of every trained network")  # fmt: skip
