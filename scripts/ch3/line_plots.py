"""Figure 3.2: layer-normalised 1-D loss curves of each row's first small- and large-batch run."""

from pathlib import Path

from landscapes.core.datasets import load
from landscapes.pipeline.io import atomic_path
from landscapes.ch3.minima import flatness_data, line_plot_curves, load_minimum, plot_line_curves, row_id
from landscapes.pipeline.runtime import select_device, set_threads, setup_logging

setup_logging(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
set_threads(snakemake.threads)  # noqa: F821
device = select_device(snakemake.params.device)  # noqa: F821
rows, lp = snakemake.params.rows, snakemake.params.line_plot  # noqa: F821
models, data = {}, {}
for row in rows:
    key = row_id(row["dataset"], row["network"])
    if row["dataset"] not in data:
        path = next(p for p in snakemake.input.datasets if Path(p).stem == row["dataset"])  # noqa: F821
        data[row["dataset"]] = flatness_data(load(path), row["flatness_samples"], device)
    for batch in ("small", "large"):
        model_path = next(p for p in snakemake.input.models if Path(p).parent.name == key and Path(p).name == f"{batch}_seed0.pt")  # noqa: F821
        models[(row["dataset"], row["network"], row[batch]["batch_size"])] = load_minimum(model_path, device)
curves = line_plot_curves(models, data, directions=lp["directions"], num_points=lp["num_points"], seed=snakemake.params.seed)  # noqa: F821
with atomic_path(snakemake.output.curves) as tmp:  # noqa: F821
    curves.to_csv(tmp, index=False)
plot_line_curves(curves, snakemake.output.figure_3_2)  # noqa: F821
