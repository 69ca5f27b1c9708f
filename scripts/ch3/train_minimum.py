"""Train small- or large-batch runs of Sec. 3.5 to their minima: one seed, or several together
(ch3.minima.seeds_per_job); each output pair (network, metrics) is one seed's run."""

from flatscape.ch3.settings import RunSettings
from flatscape.ch3.train import train_minima
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import select_device, start_job


def _listed(value):
    return [value] if isinstance(value, str) else list(value)


def main(snakemake):
    start_job(snakemake)
    cfg, runs = snakemake.params.cfg, snakemake.params.runs
    settings_of = [settings(RunSettings, {**cfg, "seed": cfg["seed"] + run["seed"]}) for run in runs]
    train_minima(snakemake.input.data, settings_of, device=select_device(settings_of[0].device),
                 model_paths=_listed(snakemake.output.model), metrics_paths=_listed(snakemake.output.metrics),
                 checkpoint_paths=[run["checkpoint"] for run in runs],
                 snapshot_dirs=[run["snapshots"] for run in runs])  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
