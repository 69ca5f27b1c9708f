"""The field's other flatness and generalization measures at one trained run of Sec. 3.5 (beyond the thesis)."""

from flatscape.ch3.ranking import GeneralizationSettings, measure_run
from flatscape.pipeline.config import settings
from flatscape.pipeline.io import save_json
from flatscape.pipeline.runtime import select_device, start_job


def main(snakemake):
    start_job(snakemake)
    s = settings(GeneralizationSettings, snakemake.params.cfg)
    result = measure_run(snakemake.input.model, snakemake.input.data, s, device=select_device(s.device))
    save_json(snakemake.output.json, result)


if __name__ == "__main__":
    main(snakemake)  # noqa: F821 (injected by Snakemake)
