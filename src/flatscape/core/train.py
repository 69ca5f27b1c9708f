"""A classifier training loop you can read top to bottom.

Data live as uint8 tensors on the training device and batches are transformed on
the fly as whole tensors (no per-sample Python), so the loop runs at the speed of
the model. Every random draw of epoch ``e`` comes from a generator seeded by
``(seed, e)``: a run resumed from a checkpoint at an epoch boundary ends with the
same weights as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from flatscape.pipeline.io import load_checkpoint, save_checkpoint, save_model

log = logging.getLogger(__name__)

# (batch as float in [0, 1], dataset indices of the batch, generator) -> batch, or (batch, target)
BatchTransform = Callable[[torch.Tensor, torch.Tensor, torch.Generator], "torch.Tensor | tuple[torch.Tensor, torch.Tensor]"]
# (network outputs, batch target) -> mean loss of the batch
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
# (model, history so far: its last record is the epoch just finished) -> None; e.g. saving snapshots
EpochHook = Callable[[nn.Module, list[dict]], None]


class ForeignRunError(RuntimeError):
    """A checkpoint or snapshot on a run's path was written by a run of other settings."""


@dataclass(frozen=True)
class Optimiser:
    """SGD/Adam with the thesis's schedules: Keras-style per-step decay and/or StepLR."""

    name: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    lr_decay: float = 0.0  # lr_t = lr / (1 + lr_decay * step)  (Sec. 4.4.1's "learning rate decay")
    step_size: int = 0  # multiply by gamma every step_size epochs (StepLR(30, 0.5) in Ch. 3's scripts)
    gamma: float = 1.0

    def build(self, params) -> torch.optim.Optimizer:
        """The torch optimiser, with the fused kernel on CPU and CUDA.

        Fused updates all parameters in one kernel: on 2 CPU cores an Adam step of the
        1.1 M-parameter MNIST-FC took 3.8 ms instead of 7.7 ms (issue 17). It rounds
        differently from the per-tensor loop, so runs are reproducible only against runs
        of the same code; other devices get the per-tensor loop.
        """
        if self.name not in ("sgd", "adam"):
            raise ValueError(f"unknown optimiser {self.name!r}")
        params = list(params)
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        if self.name == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay,
                                   fused=fused or None)  # fmt: skip
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay, fused=fused or None)

    def lr_at(self, step: int, epoch: int) -> float:
        lr = self.lr / (1.0 + self.lr_decay * step)
        if self.step_size > 0:
            lr *= self.gamma ** (epoch // self.step_size)
        return lr


@dataclass(frozen=True)
class TrainResult:
    epochs_run: int
    steps: int
    train_loss: float
    train_accuracy: float
    reached_threshold: bool | None
    seconds: float
    history: list[dict] = field(default_factory=list)
    error: str | None = None  # set by ``train_group.fit_group`` for a seed whose loss turned non-finite


@contextlib.contextmanager
def exact_float32():
    """Float32 arithmetic on CUDA as on the CPU: cuDNN's convolutions use TF32 (a 10-bit mantissa)
    by default, which moved a LeNet seed trained in a stacked group by 1e-3 of its loss from the
    same seed trained alone after one epoch on an H200 (different kernels, each rounded to TF32).
    Chapter 3's faithful default is float32, so its runs train inside this context."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


def channel_stats(images_uint8: torch.Tensor) -> tuple[list[float], list[float]]:
    """Per-channel mean and std of uint8 images (N, C, H, W) scaled to [0, 1]."""
    x = images_uint8.to(torch.float64) / 255.0
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-6)
    return mean.tolist(), std.tolist()


def fingerprint(settings) -> str:
    """A short digest of a run's settings, stored in its checkpoints so that only a run of
    the same settings resumes from them."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of every random draw in one epoch; depends on (seed, epoch) only."""
    return torch.Generator().manual_seed((seed * 1_000_003 + epoch * 7_919) % (2**63 - 1))


def _batches(n: int, batch_size: int, generator: torch.Generator | None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


@torch.no_grad()
def evaluate(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 1024,
    transform: BatchTransform | None = None,
    seed: int = 0,
) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of ``model`` on uint8 ``images`` (eval mode, restored after)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    # Sums stay on the device and are read once (no host sync per batch); float64, so
    # they equal the host's Python-float sums of the same float32 batch values.
    total_loss = torch.zeros((), dtype=_sum_dtype(device), device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    g = torch.Generator().manual_seed(seed)
    for idx in _batches(len(images), batch_size, None):
        x = images[idx].to(device, non_blocking=True).float().div_(255.0)
        if transform is not None:
            x = transform(x, idx, g)
        y = labels[idx].to(device)
        out = model(x)
        # log-softmax in float64 (float32 where the device has none): in float32 a sample whose
        # margin exceeds about 17 has CE exactly 0, so a long run's full-set CE read 0.0 and its
        # path levels below 1e-8 were crossed at once; the logits themselves stay as computed
        total_loss += F.cross_entropy(out.to(total_loss.dtype), y, reduction="sum")
        correct += (out.argmax(1) == y).sum()
    model.train(was_training)
    return total_loss.item() / len(images), correct.item() / len(images)


def _sum_dtype(device: torch.device) -> torch.dtype:
    """float64 for on-device running sums (exactly the host's float sums), float32 where the device has no float64."""
    return torch.float32 if torch.device(device).type == "mps" else torch.float64


def _cross_entropy(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(out, target)


def fit(
    model: nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    epochs: int,
    batch_size: int,
    optimiser: Optimiser,
    seed: int,
    loss: Loss = _cross_entropy,
    transform: BatchTransform | None = None,
    virtual_copies: int = 1,
    stop_loss: float | None = None,
    full_eval: bool = False,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 1,
    fingerprint: str = "",
    save_to: str | Path | None = None,
    spec: dict | None = None,
    after_epoch: EpochHook | None = None,
    progress: bool = True,
) -> TrainResult:
    """Minimise the mean ``loss`` of ``model`` on uint8 ``images`` with mini-batch SGD/Adam.

    The one training path of the pipeline. ``loss(outputs, target)`` is the mean loss of
    a batch (cross-entropy by default); the target is the batch's labels, unless
    ``transform`` returns a pair ``(input, target)`` (a denoiser's clean image, say).
    Accuracies are counted when the target holds class indices, else reported as NaN.

    ``virtual_copies`` enlarges the epoch to that many passes over the data, told
    apart by the index passed to ``transform`` (index // N is the copy), which is
    how Sec. 4.3 trains on full images plus partially observed copies. With
    ``stop_loss`` set, training stops after the first epoch whose full-training-set
    cross-entropy is below it at 100% accuracy (Sec. 3.5's criterion); ``epochs``
    is then a safety cap. ``full_eval`` records that full-training-set loss and accuracy
    every epoch without stopping on them (a fixed-epoch run whose training path is
    tracked); they are always recorded with ``stop_loss``. With ``checkpoint_path`` set, state is saved every
    ``checkpoint_every`` epochs and an existing checkpoint is resumed from, but
    only if it was written with the same ``fingerprint`` (a digest of the run's
    settings): a checkpoint of other settings raises :class:`ForeignRunError` before
    any training, so it is neither continued nor overwritten. ``after_epoch(model,
    history)`` runs after each epoch's record is appended (and before its checkpoint,
    so a resumed run repeats it for an epoch that was not checkpointed). With ``save_to``
    the finished network is saved there with ``spec`` (:func:`flatscape.pipeline.io.save_model`)
    and the checkpoint, now superseded, removed.
    """
    if epochs < 1 or batch_size < 1 or checkpoint_every < 1 or virtual_copies < 1:
        raise ValueError("epochs, batch_size, checkpoint_every and virtual_copies must be >= 1")
    if save_to is not None and spec is None:
        raise ValueError("save_to needs the spec that rebuilds the network")
    device = next(model.parameters()).device
    images = images.to(device)
    labels = labels.to(device)
    n = len(images)
    opt = optimiser.build(model.parameters())
    start_epoch, step, history = 0, 0, []
    checkpoint_path = Path(checkpoint_path) if checkpoint_path is not None else None
    state = load_checkpoint(checkpoint_path, map_location=device) if checkpoint_path and checkpoint_path.exists() else None
    if state is not None and state.get("fingerprint") != fingerprint:
        raise ForeignRunError(
            f"{checkpoint_path} was written by a run of other settings (fingerprint {state.get('fingerprint')!r}, "
            f"this run {fingerprint!r}); delete it to start this run from scratch"
        )
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimiser"])
        start_epoch, step, history = state["epoch"], state["step"], list(state["history"])
        log.info("resumed from %s at epoch %d", checkpoint_path, start_epoch)

    reached = None
    t0 = time.perf_counter()
    if stop_loss is not None and history and _reached(history[-1], stop_loss):
        start_epoch = epochs  # a checkpoint written at the stop, before the network was saved: nothing left to train
    bar = _progress(range(start_epoch, epochs), epochs, start_epoch, enabled=progress)
    epoch = start_epoch
    for epoch in bar:
        g = epoch_generator(seed, epoch)
        torch.manual_seed(int(torch.randint(2**62, (1,), generator=g)))  # dropout and other global draws
        model.train()
        # Within an epoch nothing is read back to the host (each read waits for the device):
        # the loss sum, the correct count and the first non-finite step stay on the device
        # and are read once at the epoch's end.
        sums = _EpochSums(device)
        seen, classified = 0, True
        order = torch.randperm(n * virtual_copies, generator=g)
        order_dev = order.to(device)  # one copy per epoch, not one per step
        for start in range(0, len(order), batch_size):
            for group in opt.param_groups:
                group["lr"] = optimiser.lr_at(step, epoch)
            idx, idx_dev = order[start : start + batch_size], order_dev[start : start + batch_size]
            x = images[idx_dev % n].float().div_(255.0)
            if transform is not None:
                x = transform(x, idx, g)
            x, target = x if isinstance(x, tuple) else (x, labels[idx_dev % n])
            out = model(x)
            batch_loss = loss(out, target)
            opt.zero_grad(set_to_none=True)
            batch_loss.backward()
            opt.step()
            classified = not target.is_floating_point()
            sums.add(batch_loss.detach(), step, len(idx), (out.argmax(1) == target).sum() if classified else None)
            step += 1
            seen += len(idx)
        running, correct = sums.read(epoch)
        accuracy = correct / seen if classified else math.nan
        record = {"epoch": epoch + 1, "loss": running / seen, "accuracy": accuracy, "lr": optimiser.lr_at(step, epoch)}
        if stop_loss is not None or full_eval:
            record["full_loss"], record["full_accuracy"] = evaluate(model, images, labels, batch_size=max(batch_size, 1024))
        history.append(record)
        if after_epoch is not None:
            after_epoch(model, history)
        log.info("epoch %d/%d loss %.4g accuracy %.4f", epoch + 1, epochs, record["loss"], record["accuracy"])
        if hasattr(bar, "set_postfix"):
            bar.set_postfix(loss=f"{record['loss']:.4g}", acc=f"{record['accuracy']:.3f}")
        done = stop_loss is not None and _reached(record, stop_loss)
        if checkpoint_path is not None and ((epoch + 1) % checkpoint_every == 0 or done or epoch + 1 == epochs):
            save_checkpoint(checkpoint_path, {"model": model.state_dict(), "optimiser": opt.state_dict(),
                                              "epoch": epoch + 1, "step": step, "history": history,
                                              "fingerprint": fingerprint})
        if done:
            break
    if stop_loss is not None:
        reached = bool(history and _reached(history[-1], stop_loss))
    last = history[-1] if history else {"loss": math.nan, "accuracy": math.nan}
    if save_to is not None:
        save_model(save_to, model, spec)
        if checkpoint_path is not None and checkpoint_path.exists():
            checkpoint_path.unlink()  # the saved network supersedes it
    return TrainResult(
        epochs_run=len(history),
        steps=step,
        train_loss=last.get("full_loss", last["loss"]),
        train_accuracy=last.get("full_accuracy", last["accuracy"]),
        reached_threshold=reached,
        seconds=time.perf_counter() - t0,
        history=history,
    )


def _reached(record: dict, stop_loss: float) -> bool:
    """Sec. 3.5's stop: full-training-set cross-entropy below ``stop_loss`` at 100% training accuracy."""
    return record["full_loss"] < stop_loss and record["full_accuracy"] == 1.0


class _EpochSums:
    """An epoch's running loss, correct count and first non-finite step, kept on the device.

    The loss sum is float64 (float32 on MPS): batch losses are float32 values, so the sum
    equals the former host loop's Python-float sum of ``loss.item() * len(batch)``, bit for bit.
    With ``per`` > 0 every quantity is a vector of ``per`` entries (one per network of a group).
    """

    def __init__(self, device: torch.device, per: int = 0):
        shape = (per,) if per else ()
        self.loss = torch.zeros(shape, dtype=_sum_dtype(device), device=device)
        self.correct = torch.zeros(shape, dtype=torch.int64, device=device)
        self.first_bad = torch.full(shape, -1, dtype=torch.int64, device=device)
        self.bad_value = torch.zeros(shape, dtype=torch.float32, device=device)

    def add(self, batch_loss: torch.Tensor, step: int, size: int, correct: torch.Tensor | None) -> None:
        self.loss += batch_loss.to(self.loss.dtype) * size
        if correct is not None:
            self.correct += correct
        new_bad = (self.first_bad < 0) & ~torch.isfinite(batch_loss)
        self.first_bad = torch.where(new_bad, step, self.first_bad)
        self.bad_value = torch.where(new_bad, batch_loss.float(), self.bad_value)

    def read(self, epoch: int) -> tuple[float, int]:
        """The loss sum and correct count (one network); raise if a step's loss was non-finite."""
        first_bad = int(self.first_bad)
        if first_bad >= 0:
            raise FloatingPointError(
                f"non-finite training loss ({float(self.bad_value)}) at epoch {epoch + 1}, step {first_bad}")
        return float(self.loss), int(self.correct)


def _progress(iterable, total, initial, enabled):
    if not enabled:
        return iterable
    return tqdm(iterable, total=total, initial=initial, desc="epoch", unit="ep", mininterval=1.0)
