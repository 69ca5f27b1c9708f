"""mAP50 of one Figure 4.2c detector at every test observation ratio."""

from flatscape.ch4.partial.detection import DetectorEvalSettings, evaluate_partial_detector
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(DetectorEvalSettings, snakemake.params.cfg)
    evaluate_partial_detector(s, snakemake.input.weights, snakemake.input.data, device=select_device(s.device),
                              run_dir=snakemake.params.run_dir, out_path=snakemake.output.json,
                              config_dir=snakemake.params.ultralytics, threads=snakemake.threads)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
