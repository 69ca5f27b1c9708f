"""The data an operator reads: ``(inputs, targets)`` batches, micro-batches and strided subsets."""

from __future__ import annotations

from typing import Callable, Iterable

import torch

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Batch = tuple[torch.Tensor, torch.Tensor]
Data = Batch | Iterable[Batch]


def as_batches(data: Data) -> list[Batch]:
    """``data`` as a list of ``(inputs, targets)`` pairs; a generator is consumed here, once."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        return [(data[0], data[1])]
    batches = [tuple(b) for b in data]
    if not batches or any(len(b) != 2 for b in batches):
        raise ValueError("data must be an (inputs, targets) pair of tensors or a non-empty iterable of such pairs")
    return batches


def micro_batches(batches: list[Batch], batch_size: int | None) -> list[Batch]:
    if batch_size is None:
        return batches
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
    return [(x[i : i + batch_size], y[i : i + batch_size]) for x, y in batches for i in range(0, len(x), batch_size)]


def strided_subset(data: Data, index: int, count: int) -> list[Batch]:
    """The samples whose position in ``data`` (counted across batches) is ``index`` mod ``count``.

    Striding rather than cutting into runs keeps each subset spread over the whole
    data, so data sorted by class (an image folder) still gives every subset every class.
    Empty batches are dropped.
    """
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"need 0 <= index < count, got index {index} of {count}")
    out, offset = [], 0
    for x, y in as_batches(data):
        first = (index - offset) % count
        if first < len(x):
            out.append((x[first::count], y[first::count]))
        offset += len(x)
    return out
