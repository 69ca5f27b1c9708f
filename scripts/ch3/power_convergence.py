"""Figure 3.1: convergence of the Riemannian power method (and Lanczos) for F1 on synthetic data."""

from flatscape.ch3.invariance import convergence_figure
from flatscape.ch3.settings import ConvergenceSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import atomic_path
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(ConvergenceSettings, snakemake.params.cfg)
    curves = convergence_figure(s, snakemake.output.figure_3_1, device=select_device(s.device))
    with atomic_path(snakemake.output.curves) as tmp:
        curves.to_csv(tmp, index=False)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
