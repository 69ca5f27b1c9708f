"""Measuring one trained run of Sec. 3.5: its flatness before and after a random rescaling.

At the minimum of a run: the raw Riemannian lambda_max, the authors' normalised number
(``flatness.sharpness_bound``), the Euclidean lambda_max, and both lambda_max again at a
random rescaling T_lambda of the same network (the Riemannian value cannot move, the
Euclidean one can). Conventions the thesis leaves out (see ``original-code-notes.md``):

- The flatness loss is the *mean* cross-entropy over the first ``samples`` training
  images (the same subset for every batch size and seed, Table 3.5).
- ``normalised`` is eps^2 lambda / (2 + 2L) with the row's ``eps`` (1e-3 for MNIST-FC
  in the authors' scripts) or lambda / (2 + 2L) when ``eps`` is null, L the flatness
  loss; this is the number the thesis's Table 3.7 printed.

``measure_snapshot`` takes the same measures (without the rescaled copy) of a snapshot
on a run's training path (``flatscape.ch3.snapshots``), with its test accuracy.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from flatscape.ch3.settings import MeasureSettings, PathMeasureSettings
from flatscape.ch3.snapshots import find_snapshot
from flatscape.ch3.train import load_minimum
from flatscape.core.datasets import Dataset, load
from flatscape.core.flatness import (
    WarmStage,
    euclidean_spectral_norm,
    layers,
    rescale,
    riemannian_spectral_norm,
    sharpness_bound,
)
from flatscape.core.models import load as load_network
from flatscape.core.train import ForeignRunError, evaluate
from flatscape.pipeline.io import load_json

log = logging.getLogger(__name__)


def random_lambdas(num_layers: int, log_range: float, seed: int) -> list[float]:
    """Positive lambdas with product exactly 1: log lambda_i ~ U(-r, r), then centred."""
    gen = torch.Generator().manual_seed(seed)
    logs = (torch.rand(num_layers, generator=gen, dtype=torch.float64) * 2 - 1) * log_range
    logs = logs - logs.mean()
    return [math.exp(v) for v in logs.tolist()]


def flatness_data(data: Dataset, samples: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``samples`` training images as floats in [0, 1] (Table 3.5's flatness subset)."""
    if samples > len(data.x_train):
        raise ValueError(f"flatness_samples {samples} exceeds the {len(data.x_train)} training images of {data.name}")
    x = torch.from_numpy(data.x_train[:samples]).to(device).float().div_(255.0)
    return x, torch.from_numpy(data.y_train[:samples]).to(device)


@torch.no_grad()
def float64_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor], batch_size: int | None) -> float:
    """The mean cross-entropy of ``model`` over ``batch``, the network and data in float64."""
    net = copy.deepcopy(model).to(torch.float64).eval()
    x, y = batch
    step = batch_size or len(x)
    total = sum(F.cross_entropy(net(x[i : i + step].to(torch.float64)), y[i : i + step], reduction="sum").item()
                for i in range(0, len(x), step))  # fmt: skip
    return total / len(x)


def measuring_dtype(model: torch.nn.Module, batch, dtype: str, float64_below: float | None,
                    batch_size: int | None) -> tuple[torch.dtype, float]:  # fmt: skip
    """The dtype to measure ``model`` in, and its flatness loss in float64.

    The configured ``dtype``, except float64 where the loss is below ``float64_below``: in
    float32 a confident sample's softmax rounds to exactly one, so its 1 - p, which is all its
    Hessian holds, is lost. On digits (tests/test_precision.py) the float32 Riemannian
    lambda_max of one network along its path erred by 1e-5 relative at CE 1e-4, 5e-4 at 1e-6,
    growing as 1/CE; at 50,000 MNIST images a fixed 200-epoch run's CE reads 0.0 in float32.
    """
    loss = float64_loss(model, batch, batch_size)
    if float64_below is not None and loss < float64_below:
        log.info("flatness loss %.3g is below %g: measuring in float64", loss, float64_below)
        return torch.float64, loss
    return getattr(torch, dtype), loss


def warm_stages(measure: MeasureSettings | PathMeasureSettings) -> list[WarmStage] | str:
    """The configured warm-start passes (``dtype`` by name, e.g. "bfloat16"), or "auto" (the library's rule)."""
    if isinstance(measure.warm_start, str):
        return measure.warm_start
    return [WarmStage(**{**w, "dtype": getattr(torch, w["dtype"]) if w.get("dtype") else None}) for w in measure.warm_start]


def measure_minimum(model_path: str | Path, data_path: str | Path, measure: MeasureSettings, *, device: torch.device) -> dict:
    """Flatness of one trained run: raw and normalised Riemannian lambda_max, Euclidean lambda_max,
    and both lambda_max again at a random rescaling T_lambda of the same network."""
    stages = warm_stages(measure)
    data = load(data_path)
    model = load_minimum(model_path, device)
    batch = flatness_data(data, measure.samples, device)
    dtype, loss64 = measuring_dtype(model, batch, measure.dtype, measure.float64_below, measure.batch_size)
    # in the measuring dtype before rescaling, so that T_lambda itself is not rounded to float32
    model = model.to(dtype)
    kw = dict(method=measure.method, tol=measure.tol, max_hvp=measure.max_hvp, batch_size=measure.batch_size,
              dtype=dtype, seed=measure.seed, warm_start=stages)  # fmt: skip
    lambdas = random_lambdas(len(layers(model)), measure.rescale_log_range, measure.seed)
    scaled = rescale(model, lambdas)
    out: dict = {"flatness_samples": measure.samples, "eps": measure.eps, "method": measure.method, "tol": measure.tol,
                 "dtype": str(dtype).removeprefix("torch."), "flatness_loss_float64": loss64, "warm_start": stages if isinstance(stages, str) else len(stages), "lambdas": lambdas}  # fmt: skip
    for key, net in (("", model), ("_rescaled", scaled)):
        loss = _lambda_max(net, batch, kw, key, out)
        out["flatness_loss"] = loss if key == "" else out["flatness_loss"]
    out["normalised"] = sharpness_bound(out["riemannian"], out["flatness_loss"], measure.eps)
    out["normalised_rescaled"] = sharpness_bound(out["riemannian_rescaled"], out["flatness_loss"], measure.eps)
    out["riemannian_rescale_change"] = abs(out["riemannian_rescaled"] - out["riemannian"]) / abs(out["riemannian"])
    return out


def _lambda_max(net, batch, kw: dict, key: str, out: dict) -> float:
    """Riemannian and Euclidean lambda_max of ``net`` into ``out`` (names ending in ``key``); the flatness loss."""
    for metric, fn in (("riemannian", riemannian_spectral_norm), ("euclidean", euclidean_spectral_norm)):
        t0 = time.perf_counter()
        res = fn(net, F.cross_entropy, batch, **kw)
        out[f"{metric}{key}"] = res.value
        out[f"{metric}{key}_hvp"] = res.num_hvp
        out[f"{metric}{key}_warm_hvp"] = sum(res.warm_hvp)
        out[f"{metric}{key}_converged"] = res.converged
        out[f"{metric}{key}_seconds"] = time.perf_counter() - t0
        log.info("%s%s lambda_max %.6g (%d HVPs, %s, %.1f s)", metric, key, res.value, res.num_hvp,
                 "converged" if res.converged else "NOT converged", out[f"{metric}{key}_seconds"])  # fmt: skip
    return res.loss


def measure_snapshot(metrics_path: str | Path, snapshot_dir: str | Path, data_path: str | Path,
                     measure: PathMeasureSettings, *, device: torch.device) -> dict:  # fmt: skip
    """Flatness, test accuracy and training CE of one run's snapshot at CE < ``measure.threshold``.

    A run that never got below the threshold gives ``reached: False`` and no measures. A
    snapshot whose fingerprint is not its run's (another run's file) raises ``ForeignRunError``.
    """
    metrics = load_json(metrics_path)
    out: dict = {key: metrics[key] for key in ("dataset", "network", "batch_size", "seed", "stop_loss")}
    out["protocol"] = metrics.get("protocol", "ce_stop")
    out |= {"threshold": measure.threshold, "flatness_samples": measure.samples, "eps": measure.eps}
    entry = find_snapshot(metrics, measure.threshold)
    if entry is None:
        log.info("the run never got below CE %g: nothing to measure", measure.threshold)
        return out | {"reached": False}
    path = Path(snapshot_dir) / entry["file"]
    model, state = load_network(path, device)
    if state.get("fingerprint") != metrics["fingerprint"]:
        raise ForeignRunError(f"{path} is not the snapshot of the run of {metrics_path} (fingerprint "
                              f"{state.get('fingerprint')!r}, the run's {metrics['fingerprint']!r}); retrain the run")  # fmt: skip
    data = load(data_path)
    out["test_loss"], out["test_accuracy"] = evaluate(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    out |= {"reached": True, "epoch": entry["epoch"], "train_loss": entry["full_loss"], "train_accuracy": entry["full_accuracy"]}
    batch = flatness_data(data, measure.samples, device)
    dtype, out["flatness_loss_float64"] = measuring_dtype(model, batch, measure.dtype, measure.float64_below,
                                                          measure.batch_size)  # fmt: skip
    out["dtype"] = str(dtype).removeprefix("torch.")
    kw = dict(method=measure.method, tol=measure.tol, max_hvp=measure.max_hvp, batch_size=measure.batch_size,
              dtype=dtype, seed=measure.seed, warm_start=warm_stages(measure))  # fmt: skip
    out["flatness_loss"] = _lambda_max(model.to(dtype), batch, kw, "", out)
    out["normalised"] = sharpness_bound(out["riemannian"], out["flatness_loss"], measure.eps)
    return out
