"""Writing and reading the pipeline's cached artifacts, atomically and with checks.

Every artifact is written to a temporary name and renamed, so a killed job never
leaves a truncated file under the final name; readers turn a damaged file into an
``ArtifactError`` that names it instead of a traceback from deep inside numpy/torch.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

if TYPE_CHECKING:
    import pandas as pd


class ArtifactError(RuntimeError):
    """A cached file is missing, truncated or not what its reader expects."""


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o644)  # mkstemp makes it owner-only; results are meant to be shared
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def save_figure(fig, path: str | os.PathLike, *, dpi: int = 120) -> Path:
    """Write a Matplotlib figure as PNG atomically (a killed job leaves no half image) and close it."""
    import matplotlib.pyplot as plt  # here, not at the top: most jobs that use io draw nothing

    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi)
    plt.close(fig)
    return Path(path)


def save_arrays(path: str | os.PathLike, **arrays: np.ndarray) -> None:
    """Save named arrays as an uncompressed ``.npz`` (zip members carry CRCs)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_arrays(path: str | os.PathLike, required: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz``, verifying it is complete and has ``required`` keys."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: file does not exist")
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise ArtifactError(f"{path}: member {bad!r} fails its CRC check (corrupted file); delete it and rerun")
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except ArtifactError:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise ArtifactError(f"{path}: truncated or corrupted array file ({err}); delete it and rerun") from err
    missing = [k for k in required if k not in arrays]
    if missing:
        raise ArtifactError(f"{path}: missing arrays {missing}; it was not written by this pipeline version")
    return arrays


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; damaged files raise ``ArtifactError``."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: checkpoint does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several unrelated types for a damaged zip
        raise ArtifactError(f"{path}: truncated or corrupted checkpoint ({type(err).__name__}: {err})") from err


def save_model(path: str | os.PathLike, model: torch.nn.Module, spec: dict, **extra: Any) -> None:
    """Save a trained network's weights with the ``spec`` that rebuilds it (and any ``extra`` records)."""
    save_checkpoint(path, {"spec": spec, "state_dict": model.state_dict(), **extra})


def load_model(
    path: str | os.PathLike, build: Callable[[dict], torch.nn.Module], map_location: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, dict]:
    """Rebuild a network saved by :func:`save_model`: ``build(spec)``, then its weights (``weights_only=True``).

    Returns the network in eval mode on ``map_location`` and the whole saved record
    (``spec`` and any extras). ``build`` is the caller's registry (this layer knows no
    networks), e.g. ``flatscape.core.models.from_spec``.
    """
    state = load_checkpoint(path, map_location=map_location)
    if "spec" not in state or "state_dict" not in state:
        raise ArtifactError(f"{path}: not a saved model (no spec/state_dict); it was not written by save_model")
    model = build(state["spec"]).to(map_location)
    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        raise ArtifactError(f"{path}: weights do not fit the network of its spec ({err})") from err
    return model.eval(), state


def save_json(path: str | os.PathLike, obj: Any) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def load_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise ArtifactError(f"{path}: file does not exist") from err
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}: truncated or corrupted JSON ({err})") from err


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def write_table(df: pd.DataFrame, stem: str | os.PathLike, *, caption: str = "", float_format: str = "{:.4g}") -> list[Path]:
    """Write ``df`` as ``stem.csv``, ``stem.md`` and ``stem.tex``; return the three paths.

    The CSV keeps full precision (it is the machine-readable result); Markdown and
    LaTeX are rounded for reading.
    """
    import pandas as pd  # here, not at the top: the core install (which reads and writes artifacts) lacks it

    stem = Path(stem)
    paths = [stem.with_suffix(ext) for ext in (".csv", ".md", ".tex")]
    with atomic_path(paths[0]) as tmp:
        df.to_csv(tmp, index=False)
    pretty = df.copy()
    for col in pretty.columns:
        if pd.api.types.is_float_dtype(pretty[col]):
            pretty[col] = pretty[col].map(lambda v: "" if pd.isna(v) else float_format.format(v))
    md = pretty.to_markdown(index=False)
    with atomic_path(paths[1]) as tmp:
        tmp.write_text((f"{caption}\n\n" if caption else "") + md + "\n")
    tex = pretty.to_latex(index=False, caption=caption or None, escape=True)
    with atomic_path(paths[2]) as tmp:
        tmp.write_text(tex)
    return paths
