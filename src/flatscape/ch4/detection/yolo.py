"""Ultralytics YOLO without the network: the offline switches, local fonts, and resumable training.

Ultralytics never touches the network here: :func:`ultralytics_offline` sets its
offline switches, a private config folder with local fonts and disabled integrations
before it is imported, and models are built from ``.yaml`` definitions or local files.
Ultralytics itself is imported inside the functions that use it, because it must be
configured by :func:`ultralytics_offline` first (and is slow to import).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import matplotlib
import numpy as np
import pandas as pd
import torch

from flatscape.pipeline.io import atomic_path, save_json
from flatscape.pipeline.runtime import select_device

log = logging.getLogger(__name__)

FONT_NAMES = ("Arial.ttf", "Arial.Unicode.ttf")
ULTRALYTICS_OPTIMISERS = {"sgd": "SGD", "adam": "Adam"}


@dataclass(frozen=True)
class YoloOptimiser:
    name: str
    lr: float
    momentum: float
    weight_decay: float


@dataclass(frozen=True)
class YoloTraining:
    """One Ultralytics training setup (the schema's ``$defs/yolo``).

    ``model`` is a packaged ``.yaml`` definition (trained from scratch) or a local
    weight file (fine-tuned); ``ultralytics_args`` pass through to Ultralytics unchanged.
    """

    model: str
    imgsz: int
    epochs: int
    batch: int
    optimiser: YoloOptimiser
    ultralytics_args: Mapping[str, Any]


@dataclass(frozen=True)
class DetectorJob:
    """The settings of one detector training job (Sec. 4.5's ``train_detector`` rule)."""

    yolo: YoloTraining
    seed: int
    device: str


# ---- Ultralytics without network -------------------------------------------------------


def ultralytics_offline(config_dir: str | os.PathLike, *, threads: int | None = None) -> ModuleType:
    """Import Ultralytics so that it cannot reach the network, and return the module.

    Before the first import: ``YOLO_OFFLINE=1`` (its online probe answers "offline"
    without a DNS lookup), ``YOLO_AUTOINSTALL=0`` (no pip), ``YOLO_CONFIG_DIR`` =
    ``config_dir`` (settings live there, not in the home folder), and matplotlib's
    DejaVuSans copied there as the ``Arial*.ttf`` fonts Ultralytics would otherwise
    download for its plots. Then every boolean setting (analytics ``sync``, the
    logging integrations, hub) is switched off and its data/weights/runs folders are
    pointed inside ``config_dir``. Ultralytics pins torch to ``cpu_count - 1``
    threads whenever it selects a CPU device; ``threads`` replaces that number so a
    job keeps the cores its rule declared.
    """
    config_dir = Path(config_dir).resolve()
    if "ultralytics" in sys.modules:
        if os.environ.get("YOLO_OFFLINE") != "1":
            raise RuntimeError("ultralytics was imported before ultralytics_offline(); its network switches are not set")
    else:
        os.environ["YOLO_OFFLINE"] = "1"
        os.environ["YOLO_AUTOINSTALL"] = "0"
        os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
        os.environ.setdefault("OMP_NUM_THREADS", str(threads or torch.get_num_threads()))
        _install_fonts(config_dir / "Ultralytics")
    # Imported here, after the environment above: Ultralytics reads it at import time.
    import ultralytics
    import ultralytics.utils.torch_utils as torch_utils
    from ultralytics.utils import LOGGER, SETTINGS, USER_CONFIG_DIR

    _install_fonts(Path(USER_CONFIG_DIR))  # where Ultralytics looks, if it was imported first with another folder
    SETTINGS.update({key: False for key, value in SETTINGS.items() if isinstance(value, bool)})
    SETTINGS.update(datasets_dir=str(config_dir / "datasets"), weights_dir=str(config_dir / "weights"),
                    runs_dir=str(config_dir / "runs"))  # fmt: skip
    if threads:
        torch_utils.NUM_THREADS = int(threads)
        torch.set_num_threads(int(threads))
    # Ultralytics' logger does not propagate; send its lines to the job's log file too.
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler) and handler not in LOGGER.handlers:
            LOGGER.addHandler(handler)
    return ultralytics


def _install_fonts(folder: Path) -> None:
    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    folder.mkdir(parents=True, exist_ok=True)
    for name in FONT_NAMES:
        target = folder / name
        if target.exists():
            continue
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        try:
            os.link(source, tmp)  # every job has its own folder: a hard link saves a 0.7 MB copy each
        except OSError:
            shutil.copyfile(source, tmp)
        os.replace(tmp, target)


def yolo_device(device: torch.device) -> str:
    """Ultralytics' device string for a torch device (the job's visible GPU index, or 'cpu')."""
    return "cpu" if device.type == "cpu" else str(device.index or 0)


# ---- YOLO training ------------------------------------------------------------------------------


def resolve_model(model: str) -> str:
    """A model definition Ultralytics can load offline: a packaged ``.yaml`` name, or an existing file."""
    if model.endswith((".yaml", ".yml")):
        return model
    if not Path(model).is_file():
        raise FileNotFoundError(f"YOLO weights {model!r} do not exist as a file; offline runs build models from a "
                                "'.yaml' definition or load a local weight file")  # fmt: skip
    return str(Path(model).resolve())


def yolo_train_args(training: YoloTraining, *, data_yaml, seed: int, device: torch.device, run_dir) -> dict:
    """Ultralytics' training arguments: the optimiser (no 'auto' choice), absolute paths, no plots, no workers by default."""
    run_dir = Path(run_dir).resolve()
    opt = training.optimiser
    args = {
        "data": str(Path(data_yaml).resolve()), "epochs": int(training.epochs), "imgsz": int(training.imgsz),
        "batch": int(training.batch), "optimizer": ULTRALYTICS_OPTIMISERS[opt.name], "lr0": float(opt.lr),
        "momentum": float(opt.momentum), "weight_decay": float(opt.weight_decay), "seed": int(seed),
        "deterministic": True, "device": yolo_device(device), "project": str(run_dir.parent), "name": run_dir.name,
        "exist_ok": True, "plots": False, "verbose": False, "workers": 0, "amp": device.type == "cuda",
    }  # fmt: skip
    args.update(training.ultralytics_args)
    return args


def train_yolo(training: YoloTraining, data_yaml, *, run_dir, out_weights, seed: int, device: torch.device,
               trainer=None) -> dict:
    """Train an Ultralytics YOLO detector and copy its best weights to ``out_weights``.

    A run killed midway resumes from ``run_dir/weights/last.pt`` if it was started
    with the same settings. On a GPU, Ultralytics' AMP self-check (which downloads a
    model) is replaced by trusting AMP, so nothing is fetched. ``trainer`` is an
    Ultralytics trainer class (default: its DetectionTrainer).
    """
    # Imported here: Ultralytics must be configured by ultralytics_offline() first.
    from ultralytics import YOLO

    run_dir = Path(run_dir).resolve()
    args = yolo_train_args(training, data_yaml=data_yaml, seed=seed, device=device, run_dir=run_dir)
    stamp = json.dumps({"model": training.model, "args": args, "trainer": getattr(trainer, "__name__", None),
                        "trainer_settings": getattr(trainer, "settings", None)}, sort_keys=True, default=str)
    last = run_dir / "weights" / "last.pt"
    settings_file = run_dir / "settings.json"
    resume = last.exists() and settings_file.exists() and settings_file.read_text() == stamp and _resumable(last)
    _skip_amp_download()
    t0 = time.perf_counter()
    if resume:
        log.info("resuming %s from %s", run_dir.name, last)
        yolo = YOLO(str(last))
        yolo.train(resume=True, trainer=trainer, device=args["device"], workers=args["workers"])
    else:
        if run_dir.exists():
            shutil.rmtree(run_dir)
        run_dir.mkdir(parents=True)
        settings_file.write_text(stamp)
        yolo = YOLO(resolve_model(training.model))
        yolo.train(trainer=trainer, **args)
    seconds = time.perf_counter() - t0
    best = run_dir / "weights" / "best.pt"
    source = best if best.exists() else last
    with atomic_path(out_weights) as tmp:
        shutil.copyfile(source, tmp)
    results = run_dir / "results.csv"
    history = pd.read_csv(results).rename(columns=str.strip).to_dict("records") if results.exists() else []
    for row in history:
        log.info("epoch %d: %s", int(row.get("epoch", 0)),
                 ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch" and isinstance(v, float)))
    final = {k: float(v) for k, v in (getattr(yolo.trainer, "metrics", None) or {}).items()
             if isinstance(v, (int, float, np.floating))}  # fmt: skip
    return {"model": training.model, "weights": str(source), "seconds": seconds, "epochs": training.epochs,
            "final": final, "history": history, "args": {k: v for k, v in args.items() if k not in ("project", "name")}}


def _resumable(last: Path) -> bool:
    """Whether an Ultralytics checkpoint is mid-run (a finished run's has its optimiser stripped)."""
    # Imported here: Ultralytics must be configured by ultralytics_offline() first.
    from ultralytics.utils.patches import torch_load

    try:
        ckpt = torch_load(last, map_location="cpu")  # Ultralytics' own pickled checkpoint, written by this run
    except Exception as err:  # a checkpoint cut off mid-write: start over
        log.warning("cannot read %s (%s); training from the start", last, err)
        return False
    return ckpt.get("optimizer") is not None and ckpt.get("epoch", -1) >= 0


def _skip_amp_download() -> None:
    # Imported here: Ultralytics must be configured by ultralytics_offline() first.
    import ultralytics.engine.trainer as trainer_module

    def trust_amp(model) -> bool:
        # Ultralytics' check compares against downloaded yolo26n weights; offline, trust the GPU's AMP.
        return next(model.parameters()).device.type == "cuda"

    trainer_module.check_amp = trust_amp


def train_detector(job: DetectorJob, *, data_dir, run_dir, weights, metrics, config_dir, threads: int) -> dict:
    """Sec. 4.5's detector job: train (or fine-tune) YOLO offline on ``data_dir``, save weights and metrics."""
    ultralytics_offline(config_dir, threads=threads)
    result = train_yolo(job.yolo, Path(data_dir) / "data.yaml", run_dir=run_dir, out_weights=weights, seed=job.seed,
                        device=select_device(job.device))  # fmt: skip
    save_json(metrics, result)
    return result
