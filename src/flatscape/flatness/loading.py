"""Turn the tool's model and data arguments into a network and tensors, or one clear error.

Everything that can be wrong with the input (an unknown model, a missing or mismatched
weights file, data the network cannot read, a parameter the measure cannot handle, a
non-finite loss) is found here, before any Hessian-vector product, and raised as
``InputError`` with a one-line message naming the problem.
"""

from __future__ import annotations

import importlib
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from flatscape.core import datasets
from flatscape.core.flatness import evaluation_mode, parameter_blocks
from flatscape.core.models import MODEL_NAMES, build_model
from flatscape.flatness.settings import CRITERIA, DTYPES, MEASURES, SPECTRAL_MEASURES, SPLITS, FlatnessSettings
from flatscape.pipeline.extras import PIPELINE
from flatscape.pipeline.io import load_arrays

DEFAULT_SOURCES = {"digits": "sklearn"}
"""The source of a named data set when none is given (every other one: torchvision's download)."""


class InputError(ValueError):
    """Bad input to the tool: its message is the one line the command prints."""


def not_installed(what: str, err: ModuleNotFoundError, install: str = PIPELINE) -> InputError:
    """``what`` needs a package the core install (torch, numpy, scipy, tqdm) lacks: say which, and how to get it."""
    return InputError(f"{what} needs {err.name or 'a package'}, which is not installed: {install}")


TORCHVISION = "pip install torchvision (the build for your torch), or " + PIPELINE


def check_settings(s: FlatnessSettings) -> None:
    """The options' own ranges, before anything is loaded."""
    problems = []
    if s.measure not in MEASURES:
        problems.append(f"--measure must be one of {', '.join(MEASURES)}, got {s.measure!r}")
    if s.dtype not in DTYPES:
        problems.append(f"--dtype must be one of {', '.join(DTYPES)}, got {s.dtype!r}")
    if s.split not in SPLITS:
        problems.append(f"--split must be one of {', '.join(SPLITS)}, got {s.split!r}")
    for name, value, low in (("top-k", s.top_k, 1), ("spread", s.spread, 0), ("max-hvp", s.max_hvp, 1)):
        if value < low:
            problems.append(f"--{name} must be >= {low}, got {value}")
    if s.samples is not None and s.samples < 1:
        problems.append(f"--samples must be >= 1, got {s.samples}")
    if s.batch_size is not None and s.batch_size < 1:
        problems.append(f"--batch-size must be >= 1, got {s.batch_size}")
    if not s.tol > 0:
        problems.append(f"--tol must be positive, got {s.tol}")
    if (s.mean is None) != (s.std is None):
        problems.append("--mean and --std go together")
    problems += _generalization_problems(s)
    if problems:
        raise InputError("; ".join(problems))


def _generalization_problems(s: FlatnessSettings) -> list[str]:
    """The options of the field's other measures (``--rho`` ...): positive where given, and the
    spectral-only options left at their defaults when one of those measures is asked for."""
    problems = []
    for name, value in (("rho", s.rho), ("bound", s.bound)):
        if value is not None and not (value > 0 and math.isfinite(value)):
            problems.append(f"--{name} must be a positive number, got {value}")
    for name, value in (("steps", s.steps), ("mc-samples", s.mc_samples)):
        if value is not None and value < 1:
            problems.append(f"--{name} must be >= 1, got {value}")
    if s.mag_eps is not None and not (s.mag_eps >= 0 and math.isfinite(s.mag_eps)):
        problems.append(f"--mag-eps must be >= 0, got {s.mag_eps}")
    if s.criterion not in CRITERIA:
        problems.append(f"--criterion must be one of {', '.join(CRITERIA)}, got {s.criterion!r}")
    if s.measure not in SPECTRAL_MEASURES:
        spectral = [f"--{n}" for n, on in (("top-k", s.top_k > 1), ("per-layer", s.per_layer), ("trace", s.trace),
                                           ("density", s.density), ("spread", s.spread > 0)) if on]  # fmt: skip
        if spectral:
            problems.append(f"{', '.join(spectral)} apply to --measure riemannian, euclidean or both, not {s.measure}")
    return problems


def load_data(s: FlatnessSettings) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(images as float in [0, 1] (or standardised), int64 labels, number of classes) of ``s.data``.

    ``s.samples`` of the split are drawn by a permutation seeded with ``s.seed``
    (None: all of them), so the same settings read the same samples.
    """
    kind, _, rest = s.data.partition(":")
    if kind == "npz" and rest:
        x, y = _npz(Path(rest))
        num_classes = int(y.max()) + 1 if len(y) else 0
    elif kind == "imagefolder" and rest:
        x, y, num_classes = _image_folder(Path(rest))
    elif ":" not in s.data and s.data in datasets.DATASET_NAMES:
        ds = _named(s)
        x, y = (ds.x_train, ds.y_train) if s.split == "train" else (ds.x_test, ds.y_test)
        num_classes = ds.num_classes
    else:
        raise InputError(
            f"unknown data {s.data!r}: use one of {', '.join(datasets.DATASET_NAMES)}, imagefolder:PATH or npz:PATH"
        )
    if s.samples is not None and s.samples > len(x):
        raise InputError(f"--samples {s.samples} but the data holds {len(x)} samples")
    order = np.random.default_rng(s.seed).permutation(len(x))[: s.samples]
    x, y = np.asarray(x)[order], np.asarray(y)[order]
    images = torch.from_numpy(x.astype(np.float32) / 255.0 if x.dtype == np.uint8 else x.astype(np.float32))
    if s.mean is not None:
        if len(s.mean) != images.shape[1] or len(s.std) != images.shape[1] or min(s.std) <= 0:
            raise InputError(f"--mean/--std need {images.shape[1]} values (one per channel, std > 0)")
        shape = (1, -1) + (1,) * (images.ndim - 2)
        images = (images - torch.tensor(s.mean).view(shape)) / torch.tensor(s.std).view(shape)
    return images, torch.from_numpy(y.astype(np.int64)), num_classes


def _npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    if not path.is_file():
        raise InputError(f"data file {path} does not exist")
    try:
        arrays = load_arrays(path, required=("x", "y"))
    except Exception as err:  # a damaged or foreign file: say which and why
        raise InputError(f"cannot read data file {path}: {err}") from None
    x, y = arrays["x"], arrays["y"]
    if x.ndim < 2 or y.ndim != 1 or len(x) != len(y) or len(x) == 0:
        raise InputError(f"{path}: need x of shape (N, ...) and y of shape (N,), N > 0; got {x.shape} and {y.shape}")
    if x.dtype.kind not in "uif" or y.dtype.kind not in "ui" or (y < 0).any():
        raise InputError(f"{path}: x must be numeric and y non-negative integer class labels")
    return x, y


def _image_folder(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    if not path.is_dir():
        raise InputError(f"image folder {path} does not exist")
    try:
        import torchvision  # only imagefolder: and torchvision: inputs need it, and the core install lacks it
    except ModuleNotFoundError as err:
        raise not_installed(f"--data imagefolder:{path}", err, TORCHVISION) from None
    try:
        folder = torchvision.datasets.ImageFolder(str(path))
    except (FileNotFoundError, RuntimeError) as err:
        raise InputError(f"{path}: {err}") from None
    images, labels, shape = [], [], None
    for file, label in folder.samples:
        image = np.asarray(folder.loader(file).convert("RGB"))
        if shape is not None and image.shape != shape:
            raise InputError(f"{file}: size {image.shape[:2]} differs from the first image's {shape[:2]}; resize them first")
        shape = image.shape
        images.append(image.transpose(2, 0, 1))
        labels.append(label)
    return np.stack(images), np.array(labels), len(folder.classes)


def _named(s: FlatnessSettings) -> datasets.Dataset:
    if s.data_artifact is not None:
        try:
            return datasets.load(s.data_artifact)
        except Exception as err:  # a damaged artifact names itself
            raise InputError(str(err)) from None
    source = s.data_source or DEFAULT_SOURCES.get(s.data, "download")
    cache = Path(s.data_root) / "flatscape" / f"{s.data}-{source}.npz"
    try:
        if not cache.is_file():
            datasets.materialise(s.data, cache, source=source, root=s.data_root, path=s.data_path, seed=0)
        return datasets.load(cache)
    except (ValueError, datasets.DatasetError, OSError) as err:
        raise InputError(f"data set {s.data!r} from {source}: {err}") from None
    except ModuleNotFoundError as err:  # the readers of named data sets (torchvision, scikit-learn, Pillow)
        raise not_installed(f"--data {s.data} (from {source})", err) from None


def build(s: FlatnessSettings, image_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The network of ``s.model`` with ``s.weights`` loaded, in eval mode."""
    kind, _, name = s.model.partition(":")
    args = dict(s.model_args)
    classes = s.num_classes or num_classes
    if kind == "torchvision" and name:
        try:
            import torchvision  # only torchvision: and imagefolder: inputs need it, and the core install lacks it
        except ModuleNotFoundError as err:
            raise not_installed(f"--model {s.model}", err, TORCHVISION) from None
        if name not in torchvision.models.list_models():
            raise InputError(f"unknown torchvision model {name!r}")
        model = _call(s.seed, torchvision.models.get_model, name, **{"num_classes": classes, **args})
    elif kind == "flatscape" and name:
        if name not in MODEL_NAMES:
            raise InputError(f"unknown model {name!r}; ours are {', '.join(MODEL_NAMES)}")
        if len(image_shape) != 3 or image_shape[1] != image_shape[2]:
            raise InputError(f"our networks read square images (C, H, H); the data are {tuple(image_shape)}")
        shape = {"in_channels": image_shape[0], "image_size": image_shape[1], "num_classes": classes}
        model = _call(s.seed, build_model, name, **{**shape, **args})
    elif kind and name:
        try:
            factory = getattr(importlib.import_module(kind), name)
        except (ImportError, AttributeError) as err:
            raise InputError(f"cannot load model {s.model!r}: {err}") from None
        model = _call(s.seed, factory, **({"num_classes": s.num_classes} if s.num_classes else {}), **args)
    else:
        raise InputError(f"unknown model {s.model!r}: use torchvision:NAME, flatscape:NAME or package.module:callable")
    if not isinstance(model, nn.Module):
        raise InputError(f"{s.model} returned a {type(model).__name__}, not a torch.nn.Module")
    if s.weights is not None:
        load_weights(model, Path(s.weights))
    return model.eval()


def _call(seed: int, factory, *args, **kwargs) -> nn.Module:
    # Initial weights from the seed: the same model on every run and on every torchrun rank.
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return factory(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise InputError(f"cannot build the model: {err}") from None


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a state dict saved with ``torch.save`` (read with ``weights_only=True``); a
    ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped."""
    if not path.is_file():
        raise InputError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refused or a damaged file: one line, not a traceback
        raise InputError(f"cannot read weights {path}: {str(err).splitlines()[0]}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path} holds no state dict (a mapping of names to tensors)")
    own = model.state_dict()
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong:
        parts = [f"missing {_few(missing)}"] * bool(missing) + [f"unexpected {_few(unexpected)}"] * bool(unexpected)
        parts += [f"shape mismatch (file vs model) {_few(wrong)}"] * bool(wrong)
        raise InputError(f"weights {path} do not match the model: " + "; ".join(parts))
    model.load_state_dict(state)


def _few(items: list[str]) -> str:
    return ", ".join(items[:3]) + (f" and {len(items) - 3} more" if len(items) > 3 else "")


def check_fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int | None) -> float:
    """The mean cross-entropy over all samples; fails on data the model cannot read,
    outputs that are not class scores for the labels, unsupported parameters or a non-finite loss."""
    try:
        parameter_blocks(model)
    except ValueError as err:
        raise InputError(str(err)) from None
    step = batch_size or len(x)
    reference = next(model.parameters())
    total = 0.0
    with torch.no_grad(), evaluation_mode(model):
        for i in range(0, len(x), step):
            try:
                out = model(x[i : i + step].to(reference.device, reference.dtype))
            except RuntimeError as err:
                first = str(err).strip().splitlines()[0]
                raise InputError(f"data of shape {tuple(x.shape[1:])} does not fit the model: {first}") from None
            if out.ndim != 2 or out.shape[1] <= int(y.max()):
                raise InputError(
                    f"the model outputs shape {tuple(out.shape)}, not class scores for labels up to {int(y.max())}"
                )
            total += float(nn.functional.cross_entropy(out, y[i : i + step].to(out.device), reduction="sum"))
    loss = total / len(x)
    if not math.isfinite(loss):
        raise InputError(f"the loss on the data is not finite ({loss}): check the weights and the input scaling")
    return loss
