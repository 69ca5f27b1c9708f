"""Snakemake entry point: observe the test set at one ratio (Sec. 4.3) and cache it."""

import numpy as np

from landscapes.core.datasets import load
from landscapes.core.encoders import partial_observation
from landscapes.pipeline.io import save_arrays
from landscapes.ch4.partial.classification import eval_mask_seed
from landscapes.pipeline.runtime import setup_logging

log = setup_logging(snakemake.log[0])
data = load(snakemake.input.data)
ratio = snakemake.params.ratio
seed = eval_mask_seed(snakemake.params.seed, ratio)
observed, mask, ratios = partial_observation(data.x_test, ratio, seed=seed, return_mask=True)
save_arrays(snakemake.output.npz, x=observed.astype(np.uint8), y=data.y_test, ratios=ratios)
log.info("observed %d test images at ratio %s (mean kept fraction %.4f, mask seed %d)",
         len(observed), ratio, mask.mean(), seed)
