"""Euclidean Hessian-vector products of the mean loss over all samples (thesis Sec. 3.4.1.2)."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator, Sequence

import torch
from torch import nn
from torch.func import functional_call
from torch.nn.modules.batchnorm import _BatchNorm

from flatscape.core.flatness import distributed
from flatscape.core.flatness.batches import Batch, Data, LossFn, as_batches, micro_batches
from flatscape.core.flatness.defaults import DEFAULT_BATCH_SIZE, DEFAULT_DTYPE, DEFAULT_REUSE_GRAPH
from flatscape.core.flatness.symmetry import parameter_blocks

__all__ = ["Batch", "Data", "LossFn", "LossHessian", "as_batches", "evaluation_mode"]

log = logging.getLogger(__name__)

@contextmanager
def evaluation_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode (dropout off) and restore every module's flag afterwards."""
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, flag in flags:
            m.training = flag


def _check_eval_mode_is_per_sample(model: nn.Module) -> None:
    """Reject batch norms that normalise with batch statistics even in eval mode.

    Their loss couples the samples of a batch, so it is no mean over samples and
    micro-batching (or sharding) would change it.
    """
    for name, m in model.named_modules():
        if isinstance(m, _BatchNorm) and (m.running_mean is None or m.running_var is None):
            raise ValueError(
                f"batch norm {name!r} keeps no running statistics (track_running_stats=False): in eval mode it "
                "still uses batch statistics, so the loss is not a mean over samples"
            )


def _memory_budget(device: torch.device) -> int:
    """Bytes we allow the retained gradient graphs to take: half the free memory."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free // 2
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:
        pass
    return 4 * 2**30


@contextmanager
def _count_saved_bytes(counter: list[int]) -> Iterator[None]:
    """Add to ``counter[0]`` the bytes autograd saves for backward (each storage once)."""
    seen: set[int] = set()

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in seen:
            seen.add(storage.data_ptr())
            counter[0] += storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        yield


class LossHessian:
    """Euclidean Hessian-vector products of the mean loss over all samples given.

    The loss is sum_b (n_b / N) loss_fn(model(x_b), y_b) over micro-batches b, so
    it equals the full-batch mean exactly whatever ``batch_size`` is (``loss_fn`` must
    return the mean over its batch). Two paths (thesis Sec. 3.4.1.2 via autograd):

    - reuse: build each micro-batch's first-order graph once (``create_graph``) and
      take every HVP as grad(g . v) with ``retain_graph`` (about 2 gradient passes per
      HVP; memory: all graphs stay alive);
    - recompute: rebuild the graph per micro-batch in every HVP (about 3 gradient
      passes; memory: one micro-batch).

    ``reuse_graph=None`` picks reuse when there is a single micro-batch (its graph is
    needed anyway) or when the first micro-batch's saved tensors times the number of
    micro-batches fit in half the free memory.

    Construction only copies the parameters and splits the data; the graphs (and
    ``loss``) are built at the first ``hvp`` or the first read of ``loss`` or
    ``reuse_graph``, so that several instances can be set up while only the one in use
    holds graphs (the warm passes of ``spectral_norm`` run one at a time this way).

    Under ``torch.distributed`` (``distributed.active()``) ``data`` is this rank's shard:
    ``num_samples`` is the count over all ranks, and the loss and every HVP are
    all-reduced, so they are those of the mean loss over the union of the shards.

    The caller's model is never modified: parameters are detached copies (converted to
    ``dtype`` when given) swapped in with ``torch.func.functional_call``, and every
    forward pass runs in ``evaluation_mode``.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        data: Data,
        *,
        batch_size: int | None = DEFAULT_BATCH_SIZE,
        dtype: torch.dtype | None = DEFAULT_DTYPE,
        reuse_graph: bool | None = DEFAULT_REUSE_GRAPH,
    ) -> None:
        blocks = parameter_blocks(model)
        if not blocks:
            raise ValueError("the model has no trainable parameters")
        _check_eval_mode_is_per_sample(model)
        reference = blocks[0][1]
        self.device = reference.device
        self.dtype = dtype or reference.dtype
        self.names = [name for name, _ in blocks]
        self.params = [p.detach().to(self.dtype).clone().requires_grad_(True) for _, p in blocks]
        # Buffers follow the requested dtype too (floating ones only), so float64 is float64 end to end.
        self.buffers = {
            name: (b.to(self.dtype) if b.is_floating_point() else b) for name, b in model.named_buffers()
        }
        self.model = model
        self.loss_fn = loss_fn
        self.batches = micro_batches(as_batches(data), batch_size)
        self.local_samples = sum(len(x) for x, _ in self.batches)
        # Under torch.distributed the losses are weighted by the count over all ranks' shards.
        count = torch.tensor(float(self.local_samples), dtype=torch.float64, device=self.device)
        self.num_samples = int(distributed.all_reduce_sum(count).item())
        if self.num_samples == 0:
            raise ValueError("data holds no samples")
        self._reuse_request = reuse_graph
        self._graphs: list[tuple[torch.Tensor, ...]] | None = None
        self._reuse_graph: bool | None = None
        self._loss: float | None = None

    @property
    def loss(self) -> float:
        """The mean loss over all samples at the copied parameters."""
        self._ensure_built()
        return self._loss

    @property
    def reuse_graph(self) -> bool:
        """Whether the HVPs reuse the stored first-order graphs (see the class docstring)."""
        self._ensure_built()
        return self._reuse_graph

    def _ensure_built(self) -> None:
        if self._loss is None:
            self._loss = self._build(self._reuse_request)

    def _batch_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, self.dtype if x.is_floating_point() else None)
        y = y.to(self.device, self.dtype if y.is_floating_point() else None)  # regression targets follow dtype
        state = dict(zip(self.names, self.params)) | self.buffers
        with evaluation_mode(self.model):
            out = functional_call(self.model, state, (x,))
        return self.loss_fn(out, y) * (len(x) / self.num_samples)

    def _gradient_graph(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        loss = self._batch_loss(x, y)
        grads = torch.autograd.grad(loss, self.params, create_graph=True, allow_unused=True)
        return loss.detach(), tuple(torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads))

    @torch.enable_grad()  # the first product may be asked for under no_grad (e.g. from SciPy)
    def _build(self, reuse_graph: bool | None) -> float:
        counter = [0]
        with _count_saved_bytes(counter):
            loss0, graph0 = self._gradient_graph(*self.batches[0])
        if reuse_graph is None:
            estimate = counter[0] * len(self.batches)
            reuse_graph = len(self.batches) == 1 or estimate <= _memory_budget(self.device)
            log.debug("graph memory estimate %.1f MB -> reuse=%s", estimate / 2**20, reuse_graph)
        self._reuse_graph = bool(reuse_graph)
        total = loss0.clone()
        graphs = [graph0] if self._reuse_graph else None
        for x, y in self.batches[1:]:
            if self._reuse_graph:
                loss_b, graph = self._gradient_graph(x, y)
                graphs.append(graph)
            else:
                with torch.no_grad():
                    loss_b = self._batch_loss(x, y)
            total += loss_b
        self._graphs = graphs
        return float(distributed.all_reduce_sum(total.to(torch.float64)))

    @staticmethod
    def _second_grad(graph: tuple[torch.Tensor, ...], params, vector, retain: bool) -> list[torch.Tensor]:
        live = [(g, v) for g, v in zip(graph, vector) if g.requires_grad]
        if not live:  # loss linear in the parameters: zero Hessian
            return [torch.zeros_like(p) for p in params]
        out = torch.autograd.grad(
            [g for g, _ in live], params, grad_outputs=[v for _, v in live], retain_graph=retain, allow_unused=True
        )
        return [torch.zeros_like(p) if h is None else h for p, h in zip(params, out)]

    @torch.enable_grad()
    def hvp(self, vector: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """H v for ``vector`` given as blocks (same order and shapes as the parameters)."""
        self._ensure_built()
        vector = [v.to(self.device, self.dtype) for v in vector]
        total = [torch.zeros_like(p) for p in self.params]
        if self._reuse_graph:
            parts = (self._second_grad(g, self.params, vector, True) for g in self._graphs)
        else:
            parts = (self._second_grad(self._gradient_graph(x, y)[1], self.params, vector, False) for x, y in self.batches)
        for part in parts:
            for acc, h in zip(total, part):
                acc.add_(h)
        if distributed.active():
            return self.unflatten(distributed.all_reduce_sum(self.flatten(total)))
        return total

    def flatten(self, blocks: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.cat([b.reshape(-1) for b in blocks])

    def unflatten(self, flat: torch.Tensor) -> list[torch.Tensor]:
        sizes = [p.numel() for p in self.params]
        return [chunk.view_as(p) for chunk, p in zip(torch.split(flat, sizes), self.params)]
