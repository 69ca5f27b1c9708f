"""Train the denoising autoencoder of one observation ratio (Sec. 4.4.1's Recon baselines)."""

from flatscape.ch4.partial.autoencoders import train_autoencoder
from flatscape.ch4.partial.settings import AutoencoderSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(AutoencoderSettings, snakemake.params.cfg)
    train_autoencoder(s, snakemake.input.data, device=select_device(s.device), model_path=snakemake.output.model,
                      metrics_path=snakemake.output.metrics, checkpoint_path=snakemake.params.checkpoint)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
