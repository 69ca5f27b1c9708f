"""Train one small- or large-batch run of Sec. 3.5 to its minimum."""

from landscapes.ch3.settings import RunSettings
from landscapes.ch3.train import train_minimum
from landscapes.pipeline.config import settings
from landscapes.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    run = settings(RunSettings, snakemake.params.cfg)
    train_minimum(snakemake.input.data, run, device=select_device(run.device), model_path=snakemake.output.model,
                  metrics_path=snakemake.output.metrics, checkpoint_path=snakemake.params.checkpoint,
                  snapshot_dir=snakemake.params.snapshots)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
