"""Figure 3.2: layer-normalised 1-D loss curves of each row's first small- and large-batch run."""

from pathlib import Path

from flatscape.ch3.curves import figure_3_2_curves
from flatscape.ch3.figures import plot_line_curves
from flatscape.ch3.settings import LinePlotSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import atomic_path
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(LinePlotSettings, snakemake.params.cfg)
    # runs are saved as <row>/<batch>_seed0.pt, data sets as <name>.npz
    models = {(Path(p).parent.name, Path(p).name.split("_")[0]): p for p in snakemake.input.models}
    datasets = {Path(p).stem: p for p in snakemake.input.datasets}
    curves = figure_3_2_curves(s, models, datasets, device=select_device(s.device))
    with atomic_path(snakemake.output.curves) as tmp:
        curves.to_csv(tmp, index=False)
    plot_line_curves(curves, snakemake.output.figure_3_2)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
