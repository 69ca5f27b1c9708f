"""Table 2.2: gradient descent from columnwise distance (h/5) delta (thesis Sec. 2.6.2)."""

from pathlib import Path

from landscapes.pipeline import io
from landscapes.pipeline import runtime
from landscapes.ch2.sparse_coding import Ch2Settings, run_table_2_2

runtime.setup_logging(snakemake.log[0])  # noqa: F821 (snakemake injects this global)
runtime.set_threads(snakemake.threads)  # noqa: F821
settings = Ch2Settings.from_config(dict(snakemake.params.cfg))  # noqa: F821
table = run_table_2_2(settings)
io.write_table(
    table,
    Path(snakemake.output.table_csv).with_suffix(""),  # noqa: F821
    caption="Table 2.2: share of the initial columnwise distance to A* covered by gradient descent, thesis values beside",
)
