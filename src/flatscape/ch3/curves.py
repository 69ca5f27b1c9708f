"""Figure 3.2's data: the training loss along layer-normalised random directions through a
minimum (Sec. 3.5.1, after Li et al. 2018), for each row's small- and large-batch run."""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from flatscape.ch3.measure import flatness_data
from flatscape.ch3.settings import LinePlotSettings
from flatscape.ch3.train import load_minimum, row_id
from flatscape.core.datasets import load
from flatscape.core.flatness import parameter_blocks


@torch.no_grad()
def layer_normalised_curve(
    model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], t_values: Sequence[float], *, seed: int,
    batch_size: int = 2048,
) -> np.ndarray:
    """Mean cross-entropy along W_i + t ||W_i|| / ||V_i|| V_i, V Gaussian (Sec. 3.5.1, Li et al. 2018)."""
    gen = torch.Generator().manual_seed(seed)
    blocks = parameter_blocks(model)
    base = [p.detach().clone() for _, p in blocks]
    directions = []
    for p in base:
        v = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p)
        directions.append(v * (p.norm() / v.norm().clamp_min(1e-30)))
    x, y = data
    losses = []
    was_training = model.training
    model.eval()
    try:
        for t in t_values:
            for (_, p), w, d in zip(blocks, base, directions):
                p.copy_(w + float(t) * d)
            total = sum(F.cross_entropy(model(x[i:i + batch_size]), y[i:i + batch_size], reduction="sum").item()
                        for i in range(0, len(x), batch_size))  # fmt: skip
            losses.append(total / len(x))
    finally:
        for (_, p), w in zip(blocks, base):
            p.copy_(w)
        model.train(was_training)
    return np.asarray(losses)


def line_plot_curves(
    models: dict[tuple[str, str, int], nn.Module], datasets: dict[str, tuple[torch.Tensor, torch.Tensor]],
    *, directions: int, num_points: int, seed: int,
) -> pd.DataFrame:
    """Figure 3.2's curves for ``models`` keyed by (dataset, network, batch size); the same
    direction seeds for every model so small and large batch see comparable draws."""
    t_values = np.linspace(-1.0, 1.0, num_points)
    rows = []
    for (dataset, network, batch_size), model in models.items():
        for k in range(directions):
            loss = layer_normalised_curve(model, datasets[dataset], t_values, seed=seed * 1000 + k)
            rows += [{"dataset": dataset, "network": network, "batch_size": batch_size, "direction": k, "t": t,
                      "loss": v} for t, v in zip(t_values, loss)]  # fmt: skip
    return pd.DataFrame(rows)


def figure_3_2_curves(
    s: LinePlotSettings, model_paths: Mapping[tuple[str, str], str], dataset_paths: Mapping[str, str], *, device: torch.device
) -> pd.DataFrame:
    """The job behind Figure 3.2: each row's first small- and large-batch run, on its flatness samples.

    ``model_paths`` maps (row id, "small" | "large") to a saved run, ``dataset_paths`` a
    data set's name to its cached file.
    """
    data, models = {}, {}
    for row in s.rows:
        if row.dataset not in data:
            data[row.dataset] = flatness_data(load(dataset_paths[row.dataset]), row.flatness_samples, device)
        for batch, size in (("small", row.small_batch), ("large", row.large_batch)):
            path = model_paths[(row_id(row.dataset, row.network, row.arm), batch)]
            models[(row.dataset, row.network, size)] = load_minimum(path, device)
    return line_plot_curves(models, data, directions=s.directions, num_points=s.num_points, seed=s.seed)
