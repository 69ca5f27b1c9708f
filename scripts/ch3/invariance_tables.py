"""Tables 3.2 (F1) and 3.3 (C1), and the Euclidean-vs-Riemannian extension table (thesis Sec. 3.4.2)."""

from pathlib import Path

from landscapes.ch3.invariance import euclidean_vs_riemannian_table, table_3_2, table_3_3
from landscapes.pipeline.io import write_table
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

cfg, out = snakemake.params.cfg, snakemake.output  # noqa: F821 (injected by Snakemake)
setup_logging(snakemake.log[0])  # noqa: F821
set_threads(snakemake.threads)  # noqa: F821
common = dict(num_samples=cfg["num_samples"], seed=cfg["seed"], max_hvp=cfg["max_hvp"], device=select_device(cfg.get("device", "auto")))
tables = dict(power_tol=cfg["power_tol"], lanczos_tol=cfg["lanczos_tol"], **common)
write_table(table_3_2(num_runs=cfg["runs_table_3_2"], **tables), Path(out.table_3_2_csv).with_suffix(""),
            caption="Table 3.2: Relative difference in spectral norms for F1 under different transformations")  # fmt: skip
write_table(table_3_3(num_runs=cfg["runs_table_3_3"], **tables), Path(out.table_3_3_csv).with_suffix(""),
            caption="Table 3.3: Relative difference in spectral norms for C1, averaged over runs")  # fmt: skip
write_table(euclidean_vs_riemannian_table(tol=cfg["lanczos_tol"], trace_probes=cfg["trace_probes"], **common),
            Path(out.euclidean_vs_riemannian_csv).with_suffix(""),
            caption="Euclidean vs Riemannian Hessian measures under the same rescalings (beyond the thesis)")  # fmt: skip
