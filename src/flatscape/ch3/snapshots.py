"""Snapshots along a run's training path (beyond the thesis): where flatness is measured before the minimum.

A run of Sec. 3.5 saves its network the first time its full-training-set cross-entropy
falls below each level 1e-1, 1e-2, ..., down to its stop threshold (:func:`levels`:
every power of ten from 1e-1 to the smallest one not below ``stop_loss``; a fixed-epoch
run, which has no stop, keeps going below it, down to 1e-10), into a folder
of its own (``ce_1e-02.pt``, ...). The network at its cap, or at its stop, is the run's
saved minimum. The levels depend only on ``stop_loss``, never on which of them a config
measures, so measuring another level needs no retraining.

Every snapshot carries its run's fingerprint (the digest of its settings that
``core.train.fit`` stores in checkpoints): a run refuses, before training, to start
where another run's snapshots lie, and a measurement refuses a snapshot that is not
the one its run's metrics list.
"""

from __future__ import annotations

import math
from pathlib import Path

from torch import nn

from flatscape.core.train import ForeignRunError
from flatscape.pipeline.io import load_checkpoint, save_model
from flatscape.pipeline.naming import snapshot_levels


def levels(stop_loss: float | None) -> list[float]:
    """1e-1, 1e-2, ... down to the smallest power of ten that is not below ``stop_loss``; a
    fixed-epoch run (``None``) goes on below any stop level, down to 1e-10."""
    return snapshot_levels(stop_loss)


def level_name(threshold: float) -> str:
    """A level as file names and wildcards spell it: 0.01 -> ``1e-02``."""
    return f"{threshold:.0e}"


def snapshot_name(threshold: float) -> str:
    return f"ce_{level_name(threshold)}.pt"


def check_folder(folder: str | Path, fingerprint: str) -> None:
    """Raise :class:`ForeignRunError` if ``folder`` holds a snapshot of a run with other settings."""
    for path in sorted(Path(folder).glob("ce_*.pt")):
        found = load_checkpoint(path).get("fingerprint")
        if found != fingerprint:
            raise ForeignRunError(
                f"{path} is a snapshot of a run with other settings (fingerprint {found!r}, this run "
                f"{fingerprint!r}); delete {Path(folder)} (and the run's checkpoint) to train this run there"
            )


class SnapshotSaver:
    """``fit``'s ``after_epoch`` hook: save the network at each level its epoch crosses for the first time.

    Which levels are new is read from the history (restored on resume), so a resumed
    run saves exactly what an uninterrupted one would.
    """

    def __init__(self, folder: str | Path, stop_loss: float, spec: dict, fingerprint: str):
        self.folder, self.levels, self.spec, self.fingerprint = Path(folder), levels(stop_loss), spec, fingerprint

    def __call__(self, model: nn.Module, history: list[dict]) -> None:
        record = history[-1]
        before = min((h["full_loss"] for h in history[:-1]), default=math.inf)
        for threshold in self.levels:
            if record["full_loss"] < threshold <= before:
                save_model(self.folder / snapshot_name(threshold), model, self.spec, fingerprint=self.fingerprint,
                           threshold=threshold, epoch=record["epoch"], full_loss=record["full_loss"])  # fmt: skip


def snapshot_index(folder: str | Path, stop_loss: float, history: list[dict]) -> list[dict]:
    """Every level the run crossed: its snapshot's file name, epoch and full-training-set loss and accuracy.

    A crossed level whose file is missing (deleted by hand) is an error: its snapshot
    cannot be made again without retraining.
    """
    out = []
    for threshold in levels(stop_loss):
        first = next((h for h in history if h["full_loss"] < threshold), None)
        if first is None:
            continue
        name = snapshot_name(threshold)
        if not (Path(folder) / name).exists():
            raise FileNotFoundError(f"{Path(folder) / name}: the snapshot of CE < {threshold:g} is missing; retrain the run")
        out.append({"threshold": threshold, "file": name, "epoch": first["epoch"], "full_loss": first["full_loss"],
                    "full_accuracy": first["full_accuracy"]})  # fmt: skip
    return out


def find_snapshot(metrics: dict, threshold: float) -> dict | None:
    """The entry of ``threshold`` in a run's metrics (``None`` when the run never got below it)."""
    return next((s for s in metrics["snapshots"] if math.isclose(s["threshold"], threshold, rel_tol=1e-9)), None)
