"""Train (stage base) or fine-tune (stage finetune) the crop ResNet-18 of Sec. 4.5.2."""

from flatscape.ch4.detection.crops import ClassifierJob, train_crop_classifier
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    start_job(snakemake)
    init = snakemake.input.init[0] if snakemake.input.get("init") else None  # only the finetune stage starts from a model
    train_crop_classifier(snakemake.input.videos, settings(ClassifierJob, snakemake.params.cfg),
                          model_path=snakemake.output.model, metrics_path=snakemake.output.metrics, init=init)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
