"""Accuracy and test time of the Sec. 4.4.1 methods on the cached observed test sets (Table 4.1, Figure 4.2b)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from flatscape.ch4.partial.autoencoders import Reconstructor, load_reconstructor
from flatscape.ch4.partial.settings import EvalSettings, TimingSettings
from flatscape.ch4.partial.tables import METHODS
from flatscape.core import models
from flatscape.pipeline.io import load_arrays, save_json, write_table

log = logging.getLogger(__name__)


@torch.no_grad()
def classify_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int,
                      recon: Reconstructor | None = None, ratios: torch.Tensor | None = None) -> tuple[float, float]:  # fmt: skip
    """Accuracy on uint8 ``images`` and the wall time to classify them all (synchronised on GPU).

    With ``recon`` each batch is first reconstructed (routed by the images' ``ratios``)
    inside the timed region, which is what reconstruct-then-classify costs.
    """
    device = next(model.parameters()).device
    model.eval()
    if recon is not None:
        recon.eval()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    correct = 0
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size].to(device).float().div_(255.0)
        if recon is not None:
            x = recon(x, ratios[start : start + batch_size])
        correct += (model(x).argmax(1).cpu() == labels[start : start + batch_size]).sum().item()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return correct / len(images), time.perf_counter() - t0


def _test_set(path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    test = load_arrays(path, required=("x", "y", "ratios"))
    return tuple(torch.from_numpy(test[k]) for k in ("x", "y", "ratios"))


def evaluate_method(settings: EvalSettings, model_path, test_paths, *, device: torch.device, out_paths,
                    autoencoder_paths=()) -> list[dict]:  # fmt: skip
    """Accuracy of one method on each cached observed test set (a row of Table 4.1), one JSON per cell.

    ``test_paths`` and ``out_paths`` follow ``settings.ratios``. With ``autoencoder_paths``
    the images are reconstructed first (the Recon methods). One job per row, not per cell:
    loading the networks once costs less than a process per cell.
    """
    if not len(test_paths) == len(out_paths) == len(settings.ratios):
        raise ValueError(f"{len(settings.ratios)} ratios but {len(test_paths)} test sets and {len(out_paths)} outputs")
    model, _ = models.load(model_path, device)
    recon = load_reconstructor(autoencoder_paths, device) if autoencoder_paths else None
    records = []
    for ratio, test_path, out_path in zip(settings.ratios, test_paths, out_paths):
        x, y, ratios = _test_set(test_path)
        accuracy, seconds = classify_accuracy(model, x, y, batch_size=settings.batch_size, recon=recon, ratios=ratios)
        record = {
            "method": METHODS.get(settings.method, settings.method),
            "ratio": ratio.label,
            "accuracy": accuracy,
            "seconds": seconds,
            "num_images": int(len(y)),
            "device": str(device),
            "extension": recon is not None and ratio.is_random,
        }
        save_json(out_path, record)
        log.info("%s at ratio %s: accuracy %.4f", record["method"], record["ratio"], accuracy)
        records.append(record)
    return records


def time_direct_vs_recon(settings: TimingSettings, direct_model_path, recon_model_path, autoencoder_paths,
                         test_paths, *, device: torch.device, csv_path) -> pd.DataFrame:  # fmt: skip
    """Figure 4.2b: seconds to classify a whole test set directly vs reconstruct-then-classify, per ratio.

    ``test_paths`` are the observed test sets at ``settings.ratios``, in that order.
    Both pipelines run in this one process on one device, alternating, and the
    median over ``settings.repeats`` is kept, so the two columns are comparable.
    """
    direct, _ = models.load(direct_model_path, device)
    classifier, _ = models.load(recon_model_path, device)
    recon = load_reconstructor(autoencoder_paths, device)
    batch_size, rows = settings.batch_size, []
    for ratio, path in zip(settings.ratios, test_paths, strict=True):
        x, y, ratios = _test_set(path)
        classify_accuracy(direct, x[:batch_size], y[:batch_size], batch_size=batch_size)  # warm-up
        t_direct, t_recon = [], []
        for _ in range(settings.repeats):
            t_direct.append(classify_accuracy(direct, x, y, batch_size=batch_size)[1])
            t_recon.append(classify_accuracy(classifier, x, y, batch_size=batch_size, recon=recon, ratios=ratios)[1])
        rows.append({"ratio": ratio.label, "direct_seconds": float(np.median(t_direct)),
                     "recon_seconds": float(np.median(t_recon)), "num_images": int(len(y)),
                     "repeats": settings.repeats, "device": str(device)})  # fmt: skip
    timings = pd.DataFrame(rows)
    write_table(timings, Path(csv_path).with_suffix(""),
                caption="Figure 4.2b data: seconds to classify the test set, direct vs reconstruct-then-classify")
    log.info("\n%s", timings.to_string())
    return timings
