"""Accuracy and wall time of one method on each observed test set (a row of Table 4.1)."""

from flatscape.ch4.partial.evaluate import evaluate_method
from flatscape.ch4.partial.settings import EvalSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(EvalSettings, snakemake.params.cfg)
    evaluate_method(s, snakemake.input.model, list(snakemake.input.tests), device=select_device(s.device),
                    out_paths=list(snakemake.output), autoencoder_paths=snakemake.input.get("autoencoders", []))  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
