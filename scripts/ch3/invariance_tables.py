"""Tables 3.2 (F1) and 3.3 (C1), and the Euclidean-vs-Riemannian extension table (thesis Sec. 3.4.2)."""

from pathlib import Path

from flatscape.ch3.invariance import invariance_tables
from flatscape.ch3.settings import InvarianceSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import write_table
from flatscape.pipeline.runtime import select_device, start_job

CAPTIONS = {
    "table_3_2": "Table 3.2: Relative difference in spectral norms for F1 under different transformations",
    "table_3_3": "Table 3.3: Relative difference in spectral norms for C1, averaged over runs",
    "euclidean_vs_riemannian": "Euclidean vs Riemannian Hessian measures under the same rescalings (beyond the thesis)",
}


def main(snakemake):
    start_job(snakemake)
    s = settings(InvarianceSettings, snakemake.params.cfg)
    for name, table in invariance_tables(s, device=select_device(s.device)).items():
        write_table(table, Path(snakemake.output[f"{name}_csv"]).with_suffix(""), caption=CAPTIONS[name])


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
