"""Materialise one data set as a standardised .npz from its staged files (rule ``dataset``; never downloads)."""

from flatscape.core.datasets import materialise
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    log = start_job(snakemake)
    spec = snakemake.params.spec
    meta = materialise(snakemake.wildcards.dataset, snakemake.output.npz, source=spec["source"], root=spec["root"],
                       path=spec["path"], seed=snakemake.params.seed, staged=snakemake.input.get("staged"))  # fmt: skip
    log.info("%d train / %d test images in %.1f s", meta["n_train"], meta["n_test"], meta["seconds"])
    log.info("label counts: train %s, test %s", meta["train_label_counts"], meta["test_label_counts"])
    for line in meta["checksums_verified"] or ["none (no checksums apply, or raw files reused from root)"]:
        log.info("checksum verified: %s", line)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
