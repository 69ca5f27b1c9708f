"""One measurement of a user's model: load and check everything, then the requested spectra.

``measure`` returns plain data (JSON-ready); ``format_table`` and ``plot_density`` turn
it into the command's table and figure. Nothing here prints: the command line owns
stdout and stderr.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from flatscape.core.flatness import (
    DEFAULT_TRACE_TOL,
    GENERALIZATION_MEASURES,
    MEASURE_FUNCTIONS,
    CurvatureOperator,
    block_spectral_norms,
    layer_groups,
    parameter_blocks,
    spectral_density,
    spectral_norm,
    spread,
    top_eigenpairs,
    trace,
)
from flatscape.core.flatness import distributed
from flatscape.flatness.loading import InputError, build, check_fit, check_settings, load_data
from flatscape.flatness.settings import FlatnessSettings
from flatscape.pipeline.io import save_figure

DENSITY_STEPS = 32
DENSITY_PROBES = 3
"""Stochastic Lanczos quadrature: 3 probes of 32 steps (96 HVPs) resolve the edges of
the spectrum and its bulk's shape; the density's fine structure needs more."""
DENSITY_GRID = 400


def resolve_device(name: str) -> torch.device:
    """``auto``: this rank's GPU under torchrun (``LOCAL_RANK``), else the first GPU, else the CPU."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise InputError(f"unknown device {name!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {name!r} was requested but no GPU is visible")
    return device


def prepare(s: FlatnessSettings) -> tuple[nn.Module, torch.Tensor, torch.Tensor, dict]:
    """The model (on its device, in its dtype, eval mode), the samples and a description; raises ``InputError``."""
    check_settings(s)
    device = resolve_device(s.device)
    x, y, num_classes = load_data(s)
    model = build(s, tuple(x.shape[1:]), num_classes)
    model = model.to(device=device, dtype=getattr(torch, s.dtype))
    loss = check_fit(model, x, y, s.batch_size)
    blocks = [p for _, p in parameter_blocks(model)]
    about = {
        "model": s.model, "weights": s.weights, "data": s.data, "split": s.split, "samples": len(x),
        "input_shape": list(x.shape[1:]), "num_parameters": sum(p.numel() for p in blocks),
        "num_blocks": len(blocks), "seed": s.seed, "dtype": s.dtype, "device": str(device), "loss": loss,
    }
    return model, x, y, about


def measure(s: FlatnessSettings, *, on_hvp: Callable[[], object] | None = None) -> dict:
    """Every measure ``s`` asks for, per metric, as plain data (see ``flatscape --help``).

    Under ``torchrun`` (``WORLD_SIZE`` > 1) the process group is started here and each
    rank measures its strided shard of the samples, all-reducing every HVP; all ranks
    return the same result.
    """
    start = time.perf_counter()
    model, x, y, about = prepare(s)
    if distributed.init_from_env(next(model.parameters()).device):
        (x, y), = distributed.shard((x, y))
    about["ranks"] = distributed.rank_and_size()[1]
    if s.measure in GENERALIZATION_MEASURES:
        if about["ranks"] > 1:
            raise InputError(f"--measure {s.measure} runs on one process; start it without torchrun")
        about["measures"] = {s.measure: generalization_measure(model, x, y, s)}
        about["seconds"] = time.perf_counter() - start
        return about
    metrics = ("riemannian", "euclidean") if s.measure == "both" else (s.measure,)
    about["measures"] = {m: _one_metric(model, x, y, m, s, on_hvp) for m in metrics}
    about["seconds"] = time.perf_counter() - start
    return about


def generalization_options(s: FlatnessSettings) -> dict:
    """The keyword arguments ``s`` gives the measure ``s.measure`` (unset options keep the measure's defaults)."""
    given = {"rho": s.rho, "bound": s.bound, "eps": s.mag_eps}
    if s.measure == "adaptive_sharpness":
        given |= {"steps": s.steps}
    elif s.measure == "adaptive_sharpness_avg":
        given |= {"samples": s.mc_samples}
    elif s.measure == "riemannian_trace":
        given = {"probes": s.max_hvp, "tol": DEFAULT_TRACE_TOL}  # as --trace: --tol is Lanczos' residual
    elif s.measure.startswith("pac_bayes"):
        given |= {"steps": s.steps, "samples": s.mc_samples, "criterion": s.criterion}
    allowed = {
        "relative_flatness": (), "fisher_rao_norm": (), "riemannian_trace": ("probes", "tol"),
        "adaptive_sharpness": ("rho", "steps"), "adaptive_sharpness_avg": ("rho", "samples"),
        "pac_bayes_flatness": ("bound", "steps", "samples", "criterion"),
        "pac_bayes_mag_flatness": ("bound", "steps", "samples", "criterion", "eps"),
    }[s.measure]  # fmt: skip
    return {k: v for k, v in given.items() if k in allowed and v is not None}


def generalization_measure(model, x, y, s: FlatnessSettings) -> dict:
    """One of the field's other measures (``flatscape.core.flatness.generalization``) as plain data."""
    kw = generalization_options(s)
    if s.measure not in ("relative_flatness", "fisher_rao_norm"):
        kw["seed"] = s.seed
    try:
        res = MEASURE_FUNCTIONS[s.measure](model, nn.functional.cross_entropy, (x, y), batch_size=s.batch_size, **kw)
    except ValueError as err:  # e.g. relative flatness on a model whose last layer is not Linear
        raise InputError(f"--measure {s.measure}: {err}") from None
    return {"value": res.value, "loss": res.loss, "options": kw, **res.info}


def _one_metric(model, x, y, metric: str, s: FlatnessSettings, on_hvp) -> dict:
    op = CurvatureOperator(model, nn.functional.cross_entropy, (x, y), metric=metric, batch_size=s.batch_size, on_hvp=on_hvp)
    kw = dict(tol=s.tol, max_hvp=s.max_hvp, seed=s.seed)
    out: dict = {}
    if s.top_k > 1:
        pairs = top_eigenpairs(op, s.top_k, **kw)
        out["spectral_norm"] = {"value": pairs.values[0], "num_hvp": pairs.num_hvp, "converged": pairs.converged,
                                "residual": pairs.residuals[0]}
        out["top_k"] = {"values": list(pairs.values), "residuals": list(pairs.residuals), "num_hvp": pairs.num_hvp,
                        "converged": pairs.converged}
    else:
        r = spectral_norm(op, **kw)
        out["spectral_norm"] = {"value": r.value, "num_hvp": r.num_hvp, "converged": r.converged, "residual": r.residual}
    if s.per_layer:
        out["per_layer"] = {
            label: {"value": v.value, "blocks": list(v.names), "size": v.size, "num_hvp": v.num_hvp, "converged": v.converged}
            for label, v in block_spectral_norms(op, layer_groups(op.names), **kw).items()
        }
    if s.trace:
        t = trace(op, tol=DEFAULT_TRACE_TOL, max_hvp=s.max_hvp, seed=s.seed)
        out["trace"] = {"value": t.value, "std_error": t.std_error, "num_hvp": t.num_hvp, "converged": t.converged}
    if s.density:
        d = spectral_density(op, steps=DENSITY_STEPS, probes=DENSITY_PROBES, seed=s.seed)
        used = d.nodes[d.weights > 0]
        pad = 0.05 * float(used.max() - used.min()) or 1.0
        grid = np.linspace(used.min() - pad, used.max() + pad, DENSITY_GRID)
        out["density"] = {"grid": grid.tolist(), "values": d.density(grid).tolist(), "nodes": d.nodes.tolist(),
                          "weights": d.weights.tolist(), "num_hvp": d.num_hvp}
    if s.spread:
        sp = spread(op, s.spread, **kw)
        out["spread"] = {"subsets": s.spread, "values": list(sp.values), "sizes": list(sp.sizes), "full": sp.full,
                         "mean": sp.mean, "std": sp.std, "min": sp.min, "max": sp.max, "num_hvp": sp.num_hvp,
                         "converged": sp.converged}
    return out


def _yes(flag: bool) -> str:
    return "yes" if flag else "NO"


def format_table(result: dict) -> str:
    """The readable summary the command prints: one column per metric."""
    metrics = list(result["measures"])
    ranks = f" on {result['ranks']} ranks" if result.get("ranks", 1) > 1 else ""
    lines = [
        f"model    {result['model']}" + (f" with weights {result['weights']}" if result["weights"] else f" (initial weights, seed {result['seed']})"),
        f"         {result['num_parameters']:,} parameters in {result['num_blocks']} blocks, {result['dtype']} on {result['device']}{ranks}",
        f"data     {result['data']} ({result['split']}), {result['samples']} samples of shape {tuple(result['input_shape'])}",
        f"loss     {result['loss']:.6g} (mean cross-entropy, eval mode)",
        "",
        f"{'':34}" + "".join(f"{m:>22}" for m in metrics),
    ]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"{label:34}" + "".join(f"{c:>22}" for c in cells))

    per = [result["measures"][m] for m in metrics]
    if metrics[0] in GENERALIZATION_MEASURES:
        info = per[0]
        row("value", [f"{info['value']:.6g}"])
        for key, value in info.items():
            if key not in ("value", "loss", "options"):
                row(f"  {key}", [f"{value:.6g}" if isinstance(value, float) else str(value)])
        lines.append(f"\n{result['seconds']:.1f} s")
        return "\n".join(lines)
    row("spectral norm (lambda_max)", [f"{p['spectral_norm']['value']:.6g}" for p in per])
    row("  HVPs, converged", [f"{p['spectral_norm']['num_hvp']}, {_yes(p['spectral_norm']['converged'])}" for p in per])
    if "top_k" in per[0]:
        for i in range(len(per[0]["top_k"]["values"])):
            row(f"  eigenvalue {i + 1}", [f"{p['top_k']['values'][i]:.6g}" for p in per])
    if "trace" in per[0]:
        row("trace (Hutchinson)", [f"{p['trace']['value']:.4g} +- {p['trace']['std_error']:.2g}" for p in per])
        row("  HVPs, converged", [f"{p['trace']['num_hvp']}, {_yes(p['trace']['converged'])}" for p in per])
    if "spread" in per[0]:
        sp0 = per[0]["spread"]
        row(f"spread over {sp0['subsets']} subsets of ~{sp0['sizes'][0]}", [f"{p['spread']['mean']:.4g} +- {p['spread']['std']:.2g}" for p in per])
        row("  min .. max", [f"{p['spread']['min']:.4g} .. {p['spread']['max']:.4g}" for p in per])
        row(f"  all {result['samples']} samples", [f"{p['spread']['full']:.6g}" for p in per])
    if "density" in per[0]:
        row("density (SLQ): HVPs", [str(p["density"]["num_hvp"]) for p in per])
    if "per_layer" in per[0]:
        lines.append("per layer: top eigenvalue of the diagonal block")
        for label in per[0]["per_layer"]:
            row(f"  {label}", [f"{p['per_layer'][label]['value']:.4g}" for p in per])
    lines.append(f"\n{result['seconds']:.1f} s")
    return "\n".join(lines)


def plot_density(result: dict, path: str | os.PathLike) -> None:
    """The spectral density of each metric, one panel each (log scale: the bulk sits near zero)."""
    import matplotlib.pyplot as plt  # here, not at the top: only --density draws

    metrics = [m for m in result["measures"] if "density" in result["measures"][m]]
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.5), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        d = result["measures"][metric]["density"]
        ax.semilogy(d["grid"], np.maximum(d["values"], 1e-12))
        ax.set_xlabel("eigenvalue of " + ("S H S" if metric == "riemannian" else "H"))
        ax.set_ylabel("density")
        ax.set_title(f"{metric}: {result['model']}", fontsize=9)
    save_figure(fig, path)
