"""Table 2.1 (gradient norm at points columnwise delta/2 from A*), the support-recovery
extension and the bias-reading study, from one pass over the grid (thesis Sec. 2.6.2)."""

from pathlib import Path

from landscapes.pipeline import io
from landscapes.pipeline import runtime
from landscapes.ch2.sparse_coding import Ch2Settings, run_table_2_1

runtime.setup_logging(snakemake.log[0])  # noqa: F821 (snakemake injects this global)
runtime.set_threads(snakemake.threads)  # noqa: F821
settings = Ch2Settings.from_config(dict(snakemake.params.cfg))  # noqa: F821
tables = run_table_2_1(settings)
captions = {
    "table": f"Table 2.1: average column norm of the gradient {settings.num_points} points columnwise delta/2 from A* (bias rule '{settings.bias_rule}'), thesis values beside",
    "support": f"Support recovery at the hidden layer (Theorem 2.3.1) at the Table 2.1 points, bias rule '{settings.bias_rule}'",
    "readings": "Table 2.1 under every bias reading studied (same data and points)",
    "summary": "How well each bias reading reproduces Table 2.1",
    "closest": "Table 2.1 cell by cell: every bias reading beside the thesis, and the closest",
    "coherence": "Measured coherence max |<A_i, A_j>| and xi = -log(coherence)/log(h)",
}
for name, caption in captions.items():
    if f"{name}_csv" in snakemake.output.keys():  # noqa: F821
        io.write_table(tables[name], Path(snakemake.output[f"{name}_csv"]).with_suffix(""), caption=caption)  # noqa: F821
