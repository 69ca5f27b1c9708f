"""Snakemake entry point: materialise one data set as a standardised .npz (rule ``dataset``)."""

from landscapes.core.datasets import materialise
from landscapes.pipeline.runtime import setup_logging

log = setup_logging(snakemake.log[0])  # noqa: F821 (Snakemake injects `snakemake`)
spec = snakemake.params.spec  # noqa: F821
meta = materialise(
    snakemake.wildcards.dataset,  # noqa: F821
    snakemake.output.npz,  # noqa: F821
    source=spec["source"],
    root=spec.get("root"),
    path=spec.get("path"),
    seed=snakemake.params.seed,  # noqa: F821
)
log.info("%d train / %d test images in %.1f s", meta["n_train"], meta["n_test"], meta["seconds"])
log.info("label counts: train %s, test %s", meta["train_label_counts"], meta["test_label_counts"])
for line in meta["checksums_verified"] or ["none (no checksums apply, or raw files reused from root)"]:
    log.info("checksum verified: %s", line)
