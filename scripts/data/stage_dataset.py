"""Fetch or unpack one data set under data.root and verify it (rule ``stage_dataset``, a local rule)."""

from flatscape.core.datasets import stage
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    log = start_job(snakemake)
    spec = snakemake.params.spec
    meta = stage(snakemake.wildcards.dataset, snakemake.output.manifest, source=spec["source"], root=spec["root"],
                 path=spec["path"])  # fmt: skip
    for line in meta["checksums_verified"] or ["none (no checksums apply, or raw files reused from root)"]:
        log.info("checksum verified: %s", line)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
