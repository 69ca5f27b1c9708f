"""Several seeds of one network trained together as one stacked model (issue 23).

On a GPU a small network (MNIST-FC, LeNet) leaves the card idle most of the time: one
step is a few small kernels, launched from Python. :func:`fit_group` trains ``k`` seeds
of the same network and settings at once: their parameters are stacked along a new
leading axis (``torch.func.stack_module_state``) and one ``vmap``-ed
``functional_call`` runs all ``k`` forward and backward passes as batched kernels, so a
step costs about as many launches as one seed's.

Each seed gets what its own :func:`flatscape.core.train.fit` run would have: its initial
weights (the modules passed in), its data order (``epoch_generator(seed, epoch)``), its
learning rates, and its optimiser state. SGD and Adam update every element on its own, so
one optimiser over the stacked ``(k, ...)`` parameters is ``k`` optimisers. The loss
that is differentiated is the sum of the seeds' mean losses, whose gradient with respect
to seed ``i``'s slice is seed ``i``'s own gradient. Batched kernels round differently from
single ones, so a seed trained in a group equals the seed trained alone within float32
rounding, not bit for bit.

A seed that reaches the stop (Sec. 3.5: full-training-set cross-entropy below
``stop_loss`` at 100% accuracy) is taken out of the stack at the end of that epoch, so it
stops updating at exactly the epoch it would stop alone; the others go on. A seed whose
loss turns non-finite is taken out at the end of that epoch with an ``error`` in its
result (the others finish). Checkpoints, ``after_epoch`` hooks and saved networks are
per seed and in ``fit``'s format, with the fingerprint of the single-seed run: a group
resumes from single-seed checkpoints and the other way round.

Dropout and batch norm are refused: their random masks and batch statistics are not
the single-seed run's under ``vmap``.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from flatscape.core.train import (
    EpochHook,
    ForeignRunError,
    Optimiser,
    TrainResult,
    _EpochSums,
    _progress,
    _reached,
    epoch_generator,
    evaluate,
)
from flatscape.core.models import build_model
from flatscape.pipeline.io import load_checkpoint, save_checkpoint, save_model

log = logging.getLogger(__name__)

# Layers whose training-mode output is not a function of the weights and the batch alone.
_INEXACT = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._NormBase)


@dataclass
class _Seed:
    """One seed's own state: its module (kept in step with its slice of the stack), history and counters."""

    index: int
    seed: int
    model: nn.Module
    checkpoint: Path | None
    fingerprint: str
    hook: EpochHook | None
    epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    optimiser_state: dict | None = None  # a single-seed optimiser state_dict, until the seed joins a stack
    error: str | None = None
    done: bool = False


def inexact_layers(network: str) -> list[str]:
    """The layer types of registry network ``network`` that a group cannot train exactly (none: groupable)."""
    with torch.device("meta"):  # the architecture alone: no memory, no initialisation cost
        model = build_model(network, in_channels=3, image_size=32, num_classes=10)
    return sorted({type(m).__name__ for m in model.modules() if isinstance(m, _INEXACT)})


def check_groupable(models: list[nn.Module]) -> None:
    """Raise ValueError unless ``models`` are one architecture without dropout or batch norm."""
    if not models:
        raise ValueError("models: a group needs at least one network")
    for m in models[0].modules():
        if isinstance(m, _INEXACT):
            raise ValueError(
                f"models: {type(m).__name__} layers cannot be trained in a group exactly like alone "
                "(random masks / batch statistics); train these networks one seed per job (seeds_per_job: 1)"
            )
    shapes = [{k: tuple(v.shape) for k, v in m.state_dict().items()} for m in models]
    if any(s != shapes[0] for s in shapes[1:]) or any(type(m) is not type(models[0]) for m in models):
        raise ValueError("models: every network of a group must have the same architecture")


def fit_group(
    models: list[nn.Module],
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    optimiser: Optimiser,
    seeds: list[int],
    stop_loss: float | None = None,
    full_eval: bool = False,
    checkpoint_paths: list[str | Path | None] | None = None,
    checkpoint_every: int = 1,
    fingerprints: list[str] | None = None,
    save_to: list[str | Path] | None = None,
    spec: dict | None = None,
    after_epoch: list[EpochHook | None] | None = None,
    progress: bool = True,
) -> list[TrainResult]:
    """Train ``models[i]`` from ``seeds[i]`` like ``fit(models[i], ..., seed=seeds[i])``, all at once.

    Arguments are ``fit``'s, one per seed where they are lists (``checkpoint_paths``,
    ``fingerprints``, ``save_to``, ``after_epoch``); the loss is cross-entropy on the labels,
    with no transform and one copy of the data. Returns one :class:`TrainResult` per seed;
    a seed whose loss turned non-finite has ``error`` set (and nothing saved); its
    checkpoint, if any, stays at its last good epoch, and then the other seeds' final
    checkpoints stay too. Every module ends with its seed's final weights.
    """
    k = len(models)
    if len(seeds) != k or len(set(seeds)) != k:
        raise ValueError(f"seeds: need {k} distinct seeds, one per network, got {seeds}")
    if epochs < 1 or batch_size < 1 or checkpoint_every < 1:
        raise ValueError("epochs, batch_size and checkpoint_every must be >= 1")
    checkpoint_paths = _per_seed(checkpoint_paths, k, "checkpoint_paths")
    fingerprints = _per_seed(fingerprints, k, "fingerprints", default="")
    after_epoch = _per_seed(after_epoch, k, "after_epoch")
    if save_to is not None:
        save_to = _per_seed(save_to, k, "save_to")
        if spec is None:
            raise ValueError("save_to needs the spec that rebuilds the network")
    paths = [Path(p) for p in checkpoint_paths if p is not None]
    if len(set(paths)) != len(paths):
        raise ValueError("checkpoint_paths: two seeds of a group cannot share a checkpoint")
    check_groupable(models)
    device = next(models[0].parameters()).device
    images, labels = images.to(device), labels.to(device)

    runs = [_Seed(i, s, m, Path(c) if c is not None else None, f, h)
            for i, (s, m, c, f, h) in enumerate(zip(seeds, models, checkpoint_paths, fingerprints, after_epoch))]  # fmt: skip
    for run in runs:  # every foreign checkpoint is refused before any seed trains
        _resume(run, device)
    t0 = time.perf_counter()
    for run in runs:
        if run.epoch >= epochs or (stop_loss is not None and run.history and _reached(run.history[-1], stop_loss)):
            run.done = True
    # Seeds resumed at different points (single-seed checkpoints of different ages) share
    # no learning rate; each such cohort trains as its own stack, one after the other.
    cohorts: dict[tuple[int, int], list[_Seed]] = {}
    for run in runs:
        if not run.done:
            cohorts.setdefault((run.epoch, run.step), []).append(run)
    for cohort in cohorts.values():
        _train_cohort(cohort, images, labels, epochs=epochs, batch_size=batch_size, optimiser=optimiser,
                      stop_loss=stop_loss, full_eval=full_eval, checkpoint_every=checkpoint_every,
                      progress=progress)  # fmt: skip
    seconds = time.perf_counter() - t0

    results = []
    # When a seed failed its job fails too (and its outputs go); the others' final
    # checkpoints then stay, so that the rerun finds them finished instead of training them again.
    any_failed = any(run.error is not None for run in runs)
    for run in runs:
        if save_to is not None and run.error is None:
            save_model(save_to[run.index], run.model, spec)
            if run.checkpoint is not None and run.checkpoint.exists() and not any_failed:
                run.checkpoint.unlink()  # the saved network supersedes it
        results.append(_result(run, stop_loss, seconds))
    return results


def _per_seed(values, k: int, name: str, default=None) -> list:
    if values is None:
        return [default] * k
    values = list(values)
    if len(values) != k:
        raise ValueError(f"{name}: need one entry per network ({k}), got {len(values)}")
    return values


def _resume(run: _Seed, device: torch.device) -> None:
    if run.checkpoint is None or not run.checkpoint.exists():
        return
    state = load_checkpoint(run.checkpoint, map_location=device)
    if state.get("fingerprint") != run.fingerprint:
        raise ForeignRunError(
            f"{run.checkpoint} was written by a run of other settings (fingerprint {state.get('fingerprint')!r}, "
            f"this run {run.fingerprint!r}); delete it to start this run from scratch"
        )
    run.model.load_state_dict(state["model"])
    run.optimiser_state = state["optimiser"]
    run.epoch, run.step, run.history = state["epoch"], state["step"], list(state["history"])
    log.info("seed %d resumed from %s at epoch %d", run.seed, run.checkpoint, run.epoch)


def _result(run: _Seed, stop_loss: float | None, seconds: float) -> TrainResult:
    last = run.history[-1] if run.history else {"loss": math.nan, "accuracy": math.nan}
    reached = None
    if stop_loss is not None:
        reached = bool(run.error is None and run.history and _reached(run.history[-1], stop_loss))
    return TrainResult(epochs_run=len(run.history), steps=run.step, train_loss=last.get("full_loss", last["loss"]),
                       train_accuracy=last.get("full_accuracy", last["accuracy"]), reached_threshold=reached,
                       seconds=seconds, history=run.history, error=run.error)  # fmt: skip


class _Stack:
    """The stacked parameters of the live seeds of a cohort and the one optimiser over them."""

    def __init__(self, runs: list[_Seed], optimiser: Optimiser):
        self.runs = runs
        base = runs[0].model
        params, buffers = stack_module_state([r.model for r in runs])
        self.names = [name for name, _ in base.named_parameters()]
        self.params = {n: params[n].detach().requires_grad_(True) for n in self.names}
        self.buffers = buffers
        self.opt = optimiser.build(self.params[n] for n in self.names)
        states = [r.optimiser_state for r in runs]
        if all(s is not None for s in states):
            self.opt.load_state_dict(_stack_optimiser_states(states))
        elif any(s is not None for s in states):
            raise RuntimeError("a cohort mixes resumed and fresh seeds")  # cohorts are keyed by (epoch, step)
        # The architecture without weights: functional_call swaps the stacked slices in.
        template = base

        def loss_of(p, b, x, y):
            out = functional_call(template, (p, b), (x,))
            return F.cross_entropy(out, y), out

        self.loss_and_out = vmap(loss_of)

    def sync_modules(self) -> None:
        """Copy each live seed's slice into its own module (for hooks, evaluation, checkpoints)."""
        with torch.no_grad():
            for i, run in enumerate(self.runs):
                for name, p in run.model.named_parameters():
                    p.copy_(self.params[name][i])

    def optimiser_state(self, i: int) -> dict:
        """Seed ``i``'s slice of the optimiser state, as a single-seed optimiser's ``state_dict``."""
        full = self.opt.state_dict()
        state = {pid: {key: (v[i].clone() if torch.is_tensor(v) and v.dim() > 0 else v) for key, v in s.items()}
                 for pid, s in full["state"].items()}  # fmt: skip
        return {"state": state, "param_groups": full["param_groups"]}


def _stack_optimiser_states(states: list[dict]) -> dict:
    """Single-seed optimiser ``state_dict``s as the ``state_dict`` of one optimiser over stacked parameters.

    Per-element tensors are stacked; scalars (Adam's step count, equal in a cohort) are kept."""
    first = states[0]
    out = {}
    for pid, s in first["state"].items():
        out[pid] = {key: (torch.stack([st["state"][pid][key] for st in states]) if torch.is_tensor(v) and v.dim() > 0 else v)
                    for key, v in s.items()}  # fmt: skip
    return {"state": out, "param_groups": first["param_groups"]}


def _train_cohort(runs: list[_Seed], images, labels, *, epochs, batch_size, optimiser, stop_loss, full_eval,
                  checkpoint_every, progress):  # fmt: skip
    n, device = len(images), images.device
    stack = _Stack(runs, optimiser)
    epoch, step = runs[0].epoch, runs[0].step
    bar = _progress(range(epoch, epochs), epochs, epoch, enabled=progress)
    for epoch in bar:
        live = stack.runs
        orders = []
        for run in live:
            g = epoch_generator(run.seed, epoch)
            torch.randint(2**62, (1,), generator=g)  # fit's draw of the global seed comes first; keep the stream in step
            orders.append(torch.randperm(n, generator=g))
        orders = torch.stack(orders).to(device)  # (k, n): one copy per epoch
        sums = _EpochSums(device, per=len(live))
        for start in range(0, n, batch_size):
            for group in stack.opt.param_groups:
                group["lr"] = optimiser.lr_at(step, epoch)
            idx = orders[:, start : start + batch_size]
            x, y = images[idx].float().div_(255.0), labels[idx]
            losses, out = stack.loss_and_out(stack.params, stack.buffers, x, y)
            stack.opt.zero_grad(set_to_none=True)
            losses.sum().backward()
            stack.opt.step()
            sums.add(losses.detach(), step, idx.shape[1], (out.argmax(-1) == y).sum(1))
            step += 1
        seen = n
        losses_sum, correct, first_bad = sums.loss.tolist(), sums.correct.tolist(), sums.first_bad.tolist()
        bad_values = sums.bad_value.tolist()
        stack.sync_modules()
        leaving = []
        for i, run in enumerate(live):
            run.epoch, run.step = epoch + 1, step
            if first_bad[i] >= 0:
                run.error = (f"non-finite training loss ({bad_values[i]}) at epoch {epoch + 1}, step {first_bad[i]} "
                             f"(seed {run.seed}; the other seeds of its group went on)")  # fmt: skip
                log.error(run.error)
                leaving.append(i)
                continue
            record = {"epoch": epoch + 1, "loss": losses_sum[i] / seen, "accuracy": correct[i] / seen,
                      "lr": optimiser.lr_at(step, epoch)}  # fmt: skip
            if stop_loss is not None or full_eval:
                record["full_loss"], record["full_accuracy"] = evaluate(run.model, images, labels,
                                                                        batch_size=max(batch_size, 1024))
            run.history.append(record)
            if run.hook is not None:
                run.hook(run.model, run.history)
            run.done = stop_loss is not None and _reached(record, stop_loss)
            if run.checkpoint is not None and ((epoch + 1) % checkpoint_every == 0 or run.done or epoch + 1 == epochs):
                save_checkpoint(run.checkpoint, {"model": run.model.state_dict(), "optimiser": stack.optimiser_state(i),
                                                 "epoch": epoch + 1, "step": step, "history": run.history,
                                                 "fingerprint": run.fingerprint})  # fmt: skip
            if run.done:
                leaving.append(i)
        log.info("epoch %d/%d: %d of %d seeds training", epoch + 1, epochs, len(live) - len(leaving), len(live))
        if leaving:
            staying = [r for i, r in enumerate(live) if i not in leaving]
            if not staying:
                break
            for i, run in enumerate(live):
                run.optimiser_state = stack.optimiser_state(i)
            stack = _Stack(staying, optimiser)
