"""Figure 2.2: loss and mean gradient column norm along a random direction through A* (thesis Sec. 2.6.2)."""

from pathlib import Path

from landscapes.pipeline import io
from landscapes.pipeline import runtime
from landscapes.ch2.sparse_coding import Ch2Settings, run_figure

runtime.setup_logging(snakemake.log[0])  # noqa: F821 (snakemake injects this global)
runtime.set_threads(snakemake.threads)  # noqa: F821
settings = Ch2Settings.from_config(dict(snakemake.params.cfg))  # noqa: F821
profiles = run_figure(settings, settings.figure_2_2_h, snakemake.output.figure)  # noqa: F821
if "profiles_csv" in snakemake.output.keys():  # noqa: F821
    io.write_table(profiles, Path(snakemake.output.profiles_csv).with_suffix(""), caption="Figure 2.2 data")  # noqa: F821
