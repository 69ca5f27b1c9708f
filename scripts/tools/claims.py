"""The thesis's claims against this run's tables (flatscape.pipeline.claims)."""

from flatscape.pipeline.claims import write_claims
from flatscape.pipeline.runtime import start_job


def main(snakemake):
    log = start_job(snakemake)
    table = write_claims(snakemake.params.tables_dir, snakemake.output.csv, snakemake.output.md, snakemake.output.html)
    log.info("\n%s", table.to_string())


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
