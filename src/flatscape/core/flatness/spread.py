"""How many samples the measure needs: its spread over disjoint subsets of the data (beyond the thesis).

The value of Definition 3 is a property of the mean loss over the samples given, and
it moves with them (PyHessian's users report a top eigenvalue ranging 159-1587 across
runs on 128 samples). ``spread`` measures it on B disjoint, equally sized subsets
(every B-th sample) and on all samples together: if the subsets agree to the
precision wanted, N / B samples were enough; their standard deviation is the noise a
single measurement on N / B samples carries.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Sequence

from flatscape.core.flatness.batches import strided_subset
from flatscape.core.flatness.defaults import DEFAULT_MAX_HVP, DEFAULT_METHOD, DEFAULT_SEED, DEFAULT_TOL
from flatscape.core.flatness.measures import spectral_norm
from flatscape.core.flatness.operator import CurvatureOperator
from flatscape.core.flatness.results import WarmStage


@dataclass(frozen=True)
class Spread:
    """The measure on each of B disjoint subsets (``values``, ``sizes`` samples each) and on all of them.

    ``std`` is the sample standard deviation over the subsets (ddof = 1; 0 for B = 1).
    """

    values: tuple[float, ...]
    sizes: tuple[int, ...]
    full: float
    full_size: int
    mean: float
    std: float
    min: float
    max: float
    converged: bool
    num_hvp: int
    metric: str


def spread(
    op: CurvatureOperator,
    subsets: int,
    *,
    method: str = DEFAULT_METHOD,
    tol: float = DEFAULT_TOL,
    max_hvp: int = DEFAULT_MAX_HVP,
    seed: int = DEFAULT_SEED,
    warm_start: Sequence[WarmStage] = (),
) -> Spread:
    """``spectral_norm`` on ``subsets`` disjoint subsets of ``op``'s samples and on all of them.

    Subset b holds the samples at positions b, b + B, b + 2B, ... (counted across
    batches), so data sorted by class gives every subset every class. Each subset is
    ``op.variant`` on those samples (same model, loss, metric, dtype, micro-batching);
    ``converged`` is True when every run converged. Under ``torch.distributed`` each
    rank strides its own shard, and subset b is the union of the ranks' subsets b.
    """
    if subsets < 1:
        raise ValueError(f"subsets must be >= 1, got {subsets}")
    total = sum(len(x) for x, _ in op.data)
    if subsets > total:
        raise ValueError(f"cannot split {total} samples into {subsets} non-empty subsets")
    kw = dict(method=method, tol=tol, max_hvp=max_hvp, seed=seed, warm_start=warm_start)
    parts, sizes, converged, hvps = [], [], True, 0
    for b in range(subsets):
        sub = op.variant(data=strided_subset(op.data, b, subsets))
        result = spectral_norm(sub, **kw)
        parts.append(result.value)
        sizes.append(sub.hessian.num_samples)
        converged &= result.converged
        hvps += result.num_hvp + sum(result.warm_hvp)
        del sub
    full = spectral_norm(op, **kw)
    return Spread(
        values=tuple(parts),
        sizes=tuple(sizes),
        full=full.value,
        full_size=op.hessian.num_samples,
        mean=statistics.fmean(parts),
        std=statistics.stdev(parts) if subsets > 1 else 0.0,
        min=min(parts),
        max=max(parts),
        converged=converged and full.converged,
        num_hvp=hvps + full.num_hvp + sum(full.warm_hvp),
        metric=op.metric,
    )
