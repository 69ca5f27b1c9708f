"""Train VGG-16 or VGG-16-Ours (Sec. 4.4.1)."""

from flatscape.ch4.partial.classifier import train_classifier
from flatscape.ch4.partial.settings import ClassifierSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(ClassifierSettings, snakemake.params.cfg)
    train_classifier(s, snakemake.input.data, device=select_device(s.device), model_path=snakemake.output.model,
                     metrics_path=snakemake.output.metrics, checkpoint_path=snakemake.params.checkpoint)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
