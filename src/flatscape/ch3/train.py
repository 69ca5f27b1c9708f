"""Training one run of Sec. 3.5 to its minimum: the small- and large-batch networks of Table 3.7.

A run trains a network of ``flatscape.core.models`` from a seed on the first
``train_size`` training images with one batch size until the full-training-set
cross-entropy is below ``stop_loss`` at 100% training accuracy (the epoch cap of
Table 3.6 is a safety limit), and records whether the threshold was reached: the
protocol the thesis states (``ce_stop``). With ``stop_loss=None`` it trains exactly
``epochs`` epochs and ignores the CE (``fixed_epochs``: the protocol of the authors'
public scripts, ``n_epochs = 200`` for both batch sizes); the full-training-set CE is
still recorded every epoch, so its training path is tracked past any stop level.

With ``snapshot_dir`` the run also saves its network the first time the
full-training-set cross-entropy falls below each of 1e-1, 1e-2, ... down to ``stop_loss``
(``flatscape.ch3.snapshots``) and lists them in its metrics; training is unchanged.

Inputs are images scaled to [0, 1] and standardised per channel by a ``Normalise``
layer that is part of the saved network (it has no parameters, so it is not a block of
the metric and ``rescale`` leaves it alone).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch
from torch import nn

from flatscape.ch3.settings import RunSettings
from flatscape.ch3.snapshots import SnapshotSaver, check_folder, snapshot_index
from flatscape.core.datasets import Dataset, load
from flatscape.core.models import from_spec, model_spec
from flatscape.core.models import load as load_network
from flatscape.core.train import channel_stats, evaluate, fingerprint, fit, exact_float32
from flatscape.core.train_group import fit_group
from flatscape.pipeline.config import as_plain, minima_row_id
from flatscape.pipeline.io import save_json

log = logging.getLogger(__name__)


def row_id(dataset: str, network: str, arm: str | None = None) -> str:
    """The name of a Table 3.7 row in file paths: ``<dataset>-<network>``, or ``<dataset>-<network>-<arm>``
    for a row told apart from another of the same pair (``flatscape.pipeline.config.minima_row_id``)."""
    return minima_row_id({"dataset": dataset, "network": network, "arm": arm})


def training_subset(data: Dataset, train_size: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``train_size`` training images (all when None) as uint8 tensors."""
    n = len(data.x_train) if train_size is None else int(train_size)
    if n > len(data.x_train):
        raise ValueError(f"train_size {n} exceeds the {len(data.x_train)} training images of {data.name}")
    return torch.from_numpy(data.x_train[:n]), torch.from_numpy(data.y_train[:n])


def load_minimum(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """A trained network saved by ``train_minimum`` (loaded with ``weights_only=True``), in eval mode."""
    return load_network(path, device)[0]


def train_minimum(
    data_path: str | Path,
    run: RunSettings,
    *,
    device: torch.device,
    model_path: str | Path,
    metrics_path: str | Path,
    checkpoint_path: str | Path | None = None,
    snapshot_dir: str | Path | None = None,
    progress: bool = True,
) -> dict:
    """Train one run of Sec. 3.5 to the threshold (or the epoch cap) and save it; return its metrics.

    A checkpoint or a snapshot in ``snapshot_dir`` of a run with other settings raises
    ``ForeignRunError`` before any training (and stays as it is)."""
    data = load(data_path)
    x, y = training_subset(data, run.train_size)
    spec, model, digest = _start(run, data, x, device)
    saver = None
    if snapshot_dir is not None:
        check_folder(snapshot_dir, digest)
        saver = SnapshotSaver(snapshot_dir, run.stop_loss, spec, digest)
    with exact_float32():
        result = fit(
            model, x.to(device), y.to(device), epochs=run.epochs, batch_size=run.batch_size, optimiser=run.optimiser,
            seed=run.seed, stop_loss=run.stop_loss, full_eval=True, checkpoint_path=checkpoint_path,
            checkpoint_every=run.checkpoint_every,
            fingerprint=digest, save_to=model_path, spec=spec, after_epoch=saver, progress=progress,
        )  # fmt: skip
    return _finish(run, data, x, model, result, digest, device, metrics_path, snapshot_dir)


def _start(run: RunSettings, data: Dataset, x: torch.Tensor, device) -> tuple[dict, nn.Module, str]:
    """A run's network spec, its initial network (from its seed) and its fingerprint."""
    mean, std = channel_stats(x)
    spec = model_spec(run.network, in_channels=x.shape[1], image_size=x.shape[2], num_classes=len(data.classes),
                      mean=mean, std=std, bias=bool(run.bias))  # fmt: skip
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run.seed)
        model = from_spec(spec).to(device)
    optimiser = as_plain(run.optimiser)
    digest = fingerprint([spec, len(x), run.batch_size, run.epochs, optimiser, run.stop_loss, run.seed])
    return spec, model, digest


def _finish(run, data, x, model, result, digest, device, metrics_path, snapshot_dir) -> dict:
    """Evaluate a trained run on the test set and write its metrics."""
    test_loss, test_acc = evaluate(model, torch.from_numpy(data.x_test), torch.from_numpy(data.y_test))
    metrics = {
        "dataset": data.name, "network": run.network, "bias": bool(run.bias), "batch_size": run.batch_size,
        "seed": run.seed, "train_size": len(x), "epochs_cap": run.epochs, "epochs_run": result.epochs_run,
        "steps": result.steps, "stop_loss": run.stop_loss,
        "protocol": "fixed_epochs" if run.stop_loss is None else "ce_stop", "reached_threshold": result.reached_threshold,
        "train_loss": result.train_loss, "train_accuracy": result.train_accuracy,
        "test_loss": test_loss, "test_accuracy": test_acc, "train_seconds": result.seconds,
        "device": str(device), "fingerprint": digest, "history": result.history,
        "snapshots": snapshot_index(snapshot_dir, run.stop_loss, result.history) if snapshot_dir is not None else [],
    }  # fmt: skip
    save_json(metrics_path, metrics)
    ending = {None: "fixed epoch budget", True: "threshold reached", False: "threshold NOT reached"}[result.reached_threshold]
    log.info("%s/%s batch %d seed %d: %d epochs, train loss %.3g (%s), test accuracy %.4f",
             data.name, run.network, run.batch_size, run.seed, result.epochs_run, result.train_loss, ending, test_acc)  # fmt: skip
    return metrics


def train_minima(
    data_path: str | Path,
    runs: list[RunSettings],
    *,
    device: torch.device,
    model_paths: list[str | Path],
    metrics_paths: list[str | Path],
    checkpoint_paths: list[str | Path | None] | None = None,
    snapshot_dirs: list[str | Path | None] | None = None,
    progress: bool = True,
) -> list[dict]:
    """Train several seeds of one row and batch size together (``core.train_group.fit_group``); return their metrics.

    Each run ends exactly as ``train_minimum`` would end it (same files, fingerprint,
    snapshots, checkpoints, metrics), within float32 rounding: the stacked kernels round
    differently from one network's. One run is trained by ``train_minimum`` itself. Runs
    that differ in anything but the seed raise ValueError before any training. A run whose
    loss turns non-finite gets an ``error`` in its metrics while the others finish and are
    saved; then FloatingPointError names it (the job fails, as a single run's would; the
    finished runs' final checkpoints are kept, so the rerun does not train them again).
    """
    k = len(runs)
    checkpoint_paths = list(checkpoint_paths) if checkpoint_paths is not None else [None] * k
    snapshot_dirs = list(snapshot_dirs) if snapshot_dirs is not None else [None] * k
    if not k or any(len(v) != k for v in (model_paths, metrics_paths, checkpoint_paths, snapshot_dirs)):
        raise ValueError("runs, model_paths, metrics_paths, checkpoint_paths and snapshot_dirs need one entry per run")
    common = [dataclasses.replace(r, seed=0) for r in runs]
    if any(c != common[0] for c in common[1:]):
        raise ValueError("runs: the runs of one training job may differ only in their seed")
    if k == 1:
        return [train_minimum(data_path, runs[0], device=device, model_path=model_paths[0],
                              metrics_path=metrics_paths[0], checkpoint_path=checkpoint_paths[0],
                              snapshot_dir=snapshot_dirs[0], progress=progress)]  # fmt: skip
    run = runs[0]
    data = load(data_path)
    x, y = training_subset(data, run.train_size)
    started = [_start(r, data, x, device) for r in runs]
    spec = started[0][0]
    savers = []
    for (_, _, digest), folder in zip(started, snapshot_dirs):
        if folder is not None:
            check_folder(folder, digest)
        savers.append(SnapshotSaver(folder, run.stop_loss, spec, digest) if folder is not None else None)
    with exact_float32():
        results = fit_group(
            [m for _, m, _ in started], x.to(device), y.to(device), epochs=run.epochs, batch_size=run.batch_size,
        optimiser=run.optimiser, seeds=[r.seed for r in runs], stop_loss=run.stop_loss, full_eval=True,
        checkpoint_paths=checkpoint_paths, checkpoint_every=run.checkpoint_every, fingerprints=[d for _, _, d in started],
            save_to=model_paths, spec=spec, after_epoch=savers, progress=progress,
        )  # fmt: skip
    metrics, failed = [], []
    for r, (_, model, digest), result, path, folder in zip(runs, started, results, metrics_paths, snapshot_dirs):
        if result.error is not None:
            failed.append(result.error)
            record = {"dataset": data.name, "network": r.network, "batch_size": r.batch_size, "seed": r.seed,
                      "fingerprint": digest, "error": result.error, "reached_threshold": False, "history": result.history}  # fmt: skip
            save_json(path, record)
            metrics.append(record)
            continue
        metrics.append(_finish(r, data, x, model, result, digest, device, path, folder))
    if failed:
        raise FloatingPointError("; ".join(failed))
    return metrics
