"""Figures 2.1 and 2.2: the loss and the gradient norm along a random direction through A*.

The figure is drawn on Matplotlib's object-oriented Agg canvas, never through pyplot,
so no backend is selected and no global figure state is kept.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from flatscape.ch2.gradients import column_norms, gradient_from_product, points_per_batch
from flatscape.ch2.model import SparseCodingData, data_bias, random_direction
from flatscape.ch2.settings import FigureSettings
from flatscape.pipeline.io import atomic_path

log = logging.getLogger(__name__)


def figure(settings: FigureSettings, path: str | Path) -> pd.DataFrame:
    """Profiles along a random direction at ``settings.h`` (Figure 2.1: h = 256, Figure 2.2:
    h = 4096), drawn to ``path``; returns the profiles drawn."""
    profiles = landscape_study(settings)
    title = f"h = {settings.h}, n = {settings.data.n}, bias rule '{settings.bias_rule}'"
    plot_landscape(profiles, path, title=title)
    return profiles


def landscape_study(settings: FigureSettings) -> pd.DataFrame:
    """``direction_profile`` for every p at one h, along one random direction (per h)."""
    device = settings.data.torch_device()
    ts = np.linspace(settings.t_min, settings.t_max, settings.num_t).tolist()
    direction = random_direction(settings.data.n, settings.h, seed=settings.data.seed)
    frames = []
    for p in settings.p_values:
        started = time.perf_counter()
        data = settings.data.generate(settings.h, p, device)
        eps = data_bias(settings.bias_rule, data)
        profile = direction_profile(data, eps, ts, direction)
        profile.insert(0, "p", p)
        profile.insert(0, "h", settings.h)
        profile.insert(2, "rule", settings.bias_rule)
        profile.insert(3, "bias", eps)
        frames.append(profile)
        log.info("landscape h=%d p=%g: %d values of t in %.1f s", settings.h, p, len(profile), time.perf_counter() - started)
    return pd.concat(frames, ignore_index=True)


def direction_profile(
    data: SparseCodingData,
    eps: float,
    ts: Sequence[float],
    direction: torch.Tensor,
    *,
    max_elements: int = 2**24,
) -> pd.DataFrame:
    """f(t) = L(A* + t Delta W^T) and the gradient's mean column norm along t (Sec. 2.6.2)."""
    direction = direction.to(device=data.dictionary.device, dtype=data.dictionary.dtype)
    t_all = torch.as_tensor(list(ts), dtype=data.dictionary.dtype, device=data.dictionary.device)
    per_batch = points_per_batch(data.h, data.num_signals, max_elements)
    rows = []
    for start in range(0, len(t_all), per_batch):
        t = t_all[start : start + per_batch]
        weights = data.dictionary.T + t[:, None, None] * direction
        product = weights @ data.signals
        active_fraction = torch.count_nonzero(product > eps, dim=(-2, -1)).to(torch.float64) / (data.h * data.num_signals)
        loss, grad = gradient_from_product(weights, data.signals, product, eps, inplace=True)
        norms = column_norms(grad.to(torch.float64)).mean(dim=-1)
        for j in range(len(t)):
            rows.append(
                {"t": float(t[j]), "loss": float(loss[j]), "grad_norm": float(norms[j]), "active_fraction": float(active_fraction[j])}
            )
    return pd.DataFrame(rows)


def plot_landscape(profiles: pd.DataFrame, path: str | Path, *, title: str = "") -> Path:
    """Draw one column per p: the loss f(t) on top, the mean gradient column norm below (PNG)."""
    p_values = sorted(profiles["p"].unique())
    fig = Figure(figsize=(4.0 * len(p_values), 6.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(2, len(p_values), squeeze=False)
    for col, p in enumerate(p_values):
        part = profiles[profiles["p"] == p].sort_values("t")
        top, bottom = axes[0][col], axes[1][col]
        top.plot(part["t"], part["loss"], color="tab:blue")
        bottom.plot(part["t"], part["grad_norm"], color="tab:red")
        for ax in (top, bottom):
            ax.axvline(0.0, color="0.6", lw=0.8, ls="--")
            ax.grid(alpha=0.3)
        top.set_title(f"p = {p:g}, eps = {part['bias'].iloc[0]:.3g}")
        top.set_ylabel(r"$f(t) = L(A^* + t\,\Delta W^\top)$")
        bottom.set_ylabel("mean column gradient norm")
        bottom.set_xlabel("t")
    if title:
        fig.suptitle(title)
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return path
