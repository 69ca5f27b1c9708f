"""``flatscape``: the scale-invariant flatness of anyone's model from the command line.

    flatscape --model torchvision:resnet18 --weights model.pt --data cifar10 \\
        --data-source imagefolder_tar --data-path cifar10.tar.gz --samples 512 --top-k 3 --json out.json

Everything the input can get wrong is checked before the first Hessian-vector product;
the command then exits with status 2 and one line on stderr, and writes nothing. The
table goes to stdout, the progress bar of HVPs to stderr, ``--json`` and the density
figure to files (each written whole or not at all).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from flatscape import __version__
from flatscape.core import datasets
from flatscape.core.flatness import distributed
from flatscape.flatness.loading import InputError
from flatscape.flatness.measure import format_table, measure, plot_density
from flatscape.flatness.settings import CRITERIA, DTYPES, MEASURES, SPLITS, FlatnessSettings
from flatscape.pipeline.extras import PLOT, missing
from flatscape.pipeline.io import save_json

PROG = "flatscape"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    m = p.add_argument_group("model")
    m.add_argument("--model", required=True, help="torchvision:NAME (e.g. torchvision:resnet18), flatscape:NAME "
                   "(e.g. flatscape:vgg16_cifar) or package.module:callable")
    m.add_argument("--weights", help="a state dict saved with torch.save (read with weights_only=True)")
    m.add_argument("--model-args", default="{}", help="JSON object of keyword arguments for the model's constructor")
    m.add_argument("--num-classes", type=int, help="the head's classes (default: the data's)")
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, help=f"{', '.join(datasets.DATASET_NAMES)}, imagefolder:PATH or "
                   "npz:PATH (arrays x (N, C, H, W), uint8 scaled to [0, 1] or float as is, and y labels)")
    d.add_argument("--data-source", choices=datasets.SOURCES, help="how a named data set is obtained "
                   "(default: sklearn for digits, download otherwise), as in the pipeline's config")
    d.add_argument("--data-root", default="data/raw", help="cache folder for named data sets")
    d.add_argument("--data-path", help="mirror folder or .tar.gz of a named data set")
    d.add_argument("--split", choices=SPLITS, default="train")
    d.add_argument("--samples", type=int, default=256, help="samples drawn by a seeded permutation (0: all)")
    d.add_argument("--mean", type=float, nargs="+", help="per-channel mean to subtract (with --std)")
    d.add_argument("--std", type=float, nargs="+", help="per-channel standard deviation to divide by")
    d.add_argument("--batch-size", type=int, default=128, help="micro-batch size (0: all samples at once)")
    r = p.add_argument_group("run")
    r.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    r.add_argument("--dtype", choices=DTYPES, default="float32")
    r.add_argument("--tol", type=float, default=1e-3, help="relative error of the eigenvalue at which Lanczos stops (estimated; in (0, 1))")
    r.add_argument("--max-hvp", type=int, default=300, help="HVP budget of each eigenvalue computation")
    r.add_argument("--seed", type=int, default=0)
    w = p.add_argument_group("what to measure")
    w.add_argument("--measure", choices=MEASURES, default="riemannian")
    w.add_argument("--top-k", type=int, default=1, help="the k largest eigenvalues (1: the spectral norm only)")
    w.add_argument("--per-layer", action="store_true", help="top eigenvalue of each layer's diagonal block")
    w.add_argument("--trace", action="store_true", help="Hutchinson trace with its standard error")
    w.add_argument("--density", action="store_true", help="spectral density (stochastic Lanczos quadrature); writes a PNG")
    w.add_argument("--spread", type=int, default=0, metavar="B", help="the measure on B disjoint subsets of the samples")
    g = p.add_argument_group("the field's other measures (--measure relative_flatness, adaptive_sharpness, ...)")
    g.add_argument("--rho", type=float, help="adaptive sharpness radius (worst case 0.5, average 0.05)")
    g.add_argument("--steps", type=int, help="gradient ascent steps (10) or PAC-Bayes bisection steps (15)")
    g.add_argument("--mc-samples", type=int, help="Monte Carlo draws (10)")
    g.add_argument("--bound", type=float, help="PAC-Bayes: largest allowed expected increase (0.1)")
    g.add_argument("--criterion", choices=CRITERIA, default="error", help="PAC-Bayes: what the bound limits")
    g.add_argument("--mag-eps", type=float, help="magnitude-aware PAC-Bayes: eps of N(0, a^2 w^2 + eps^2) (1e-3)")
    o = p.add_argument_group("output")
    o.add_argument("--json", type=Path, help="write every number to this JSON file")
    o.add_argument("--plot", type=Path, help="the density figure (default: beside --json, else flatness_density.png)")
    o.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    return p


def settings_from_args(args: argparse.Namespace) -> FlatnessSettings:
    try:
        model_args = json.loads(args.model_args)
    except json.JSONDecodeError as err:
        raise InputError(f"--model-args is not JSON: {err}") from None
    if not isinstance(model_args, dict):
        raise InputError("--model-args must be a JSON object")
    return FlatnessSettings(
        model=args.model, weights=args.weights, model_args=model_args, num_classes=args.num_classes,
        data=args.data, data_source=args.data_source, data_root=args.data_root, data_path=args.data_path,
        data_artifact=None, split=args.split, samples=args.samples or None,
        mean=tuple(args.mean) if args.mean else None, std=tuple(args.std) if args.std else None,
        batch_size=args.batch_size or None, device=args.device, dtype=args.dtype, measure=args.measure,
        top_k=args.top_k, per_layer=args.per_layer, trace=args.trace, density=args.density, spread=args.spread,
        tol=args.tol, max_hvp=args.max_hvp, seed=args.seed, rho=args.rho, steps=args.steps,
        mc_samples=args.mc_samples, bound=args.bound, criterion=args.criterion, mag_eps=args.mag_eps,
    )


def density_plot_path(json_path: Path | None, plot: Path | None) -> Path:
    if plot is not None:
        return plot
    return json_path.with_suffix(".density.png") if json_path is not None else Path("flatness_density.png")


def run(s: FlatnessSettings, *, json_path=None, plot_path=None, progress: bool = False) -> dict:
    """Measure and write the outputs (``json_path``, and ``plot_path`` when ``s.density``); returns the result.

    Only rank 0 writes under ``torchrun``. A progress bar of HVPs goes to stderr when ``progress``.
    """
    if s.density and plot_path is not None and missing(["matplotlib"]):
        # before the first HVP: a long measurement must not end in an ImportError
        raise InputError(f"--density draws its figure with matplotlib, which is not installed: {PLOT}")
    bars: list[tqdm] = []

    def tick() -> None:  # the bar appears with the first HVP, after every input check has passed
        if not bars:
            quiet = not progress or distributed.rank_and_size()[0] > 0
            bars.append(tqdm(desc="Hessian-vector products", unit="HVP", file=sys.stderr, disable=quiet))
        bars[0].update()

    try:
        result = measure(s, on_hvp=tick)
    finally:
        for bar in bars:
            bar.close()
    if distributed.rank_and_size()[0] == 0:
        if s.density and plot_path is not None:
            plot_density(result, plot_path)
            result["density_plot"] = str(plot_path)
        if json_path is not None:
            save_json(json_path, result)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        s = settings_from_args(args)
        plot = density_plot_path(args.json, args.plot) if args.density else None
        result = run(s, json_path=args.json, plot_path=plot, progress=not args.no_progress)
    except InputError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    if distributed.rank_and_size()[0] == 0:
        print(format_table(result))
    return 0
