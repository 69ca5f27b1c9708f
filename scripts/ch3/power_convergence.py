"""Figure 3.1: convergence of the Riemannian power method (and Lanczos) for F1 on synthetic data."""

from landscapes.ch3.invariance import figure_3_1
from landscapes.pipeline.io import atomic_path
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

cfg, out = snakemake.params.cfg, snakemake.output  # noqa: F821 (injected by Snakemake)
setup_logging(snakemake.log[0])  # noqa: F821
set_threads(snakemake.threads)  # noqa: F821
curves = figure_3_1(out.figure_3_1, num_runs=cfg["runs_figure_3_1"], num_samples=cfg["num_samples"], seed=cfg["seed"],
                    power_tol=cfg["power_tol"], lanczos_tol=cfg["lanczos_tol"], max_hvp=cfg["max_hvp"],
                    device=select_device(cfg.get("device", "auto")))  # fmt: skip
if hasattr(out, "curves"):
    with atomic_path(out.curves) as tmp:
        curves.to_csv(tmp, index=False)
