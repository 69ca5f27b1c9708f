"""Figure 4.2b's timings, direct vs reconstruct-then-classify, in one process."""

from flatscape.ch4.partial.evaluate import time_direct_vs_recon
from flatscape.ch4.partial.settings import TimingSettings
from flatscape.pipeline.config import settings
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(TimingSettings, snakemake.params.cfg)
    i = snakemake.input
    time_direct_vs_recon(s, i.direct, i.classifier, i.autoencoders, i.tests, device=select_device(s.device),
                         csv_path=snakemake.output.timings_csv)  # fmt: skip


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
