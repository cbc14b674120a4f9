"""What trainers log about a batch's predictions beside the loss: the entropy of the predicted
distribution and the top-1 hits, over the counted positions, without gradients, in row chunks
(from the logits, or from the hidden states and the output layer without holding ``[N, V]``).

Per position with logits ``z`` (float32) and ``p = softmax(z)``:

    entropy = lse(z) - sum_k p_k z_k          (nats; a class with p_k = 0 adds nothing)
    hit     = [first arg-max of z == target]
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from .learned import softmax_and_lse
from .logit_stats import compute_dtype, first_argmax, row_slices
from .parts import IGNORE_INDEX


class TokenMetrics(NamedTuple):
    """Sums over the counted positions (float32 for float32/half logits, float64 for float64)."""

    entropy: Tensor  # sum of the positions' entropies
    correct: Tensor  # number of positions whose first arg-max is the target
    count: Tensor  # number of counted positions (target != ignore_index)


def _rows(target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor]:
    """The counted rows of the flattened target, and the flattened target."""
    flat = target.reshape(-1)
    if ignore_index is None:
        return torch.arange(flat.numel(), device=flat.device), flat
    return (flat != ignore_index).nonzero().squeeze(-1), flat


def _sums(z: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    p, lse = softmax_and_lse(z)
    weighted = torch.where(p > 0, p * z, torch.zeros((), dtype=z.dtype, device=z.device))
    return (lse - weighted.sum(-1)).sum(), (first_argmax(z) == target).sum()


@torch.no_grad()
def token_metrics(logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX) -> TokenMetrics:
    """Entropy sum, top-1 hits and count over the positions of ``target`` that are not ``ignore_index``.

    Args:
        logits: ``[..., K]`` in any float dtype.
        target: ``[...]`` class indices.
        ignore_index: the target of positions left out.

    Returns:
        A :class:`TokenMetrics` of 0-d tensors on the logits' device.

    Example:
        >>> import math, torch
        >>> m = token_metrics(torch.tensor([[0.0, 0.0], [5.0, 0.0]]), torch.tensor([1, -100]))
        >>> round(float(m.entropy), 4) == round(math.log(2), 4), int(m.correct), int(m.count)
        (True, 0, 1)
    """
    k = logits.size(-1)
    flat_logits = logits.reshape(-1, k)
    rows, flat = _rows(target, ignore_index)
    dtype = compute_dtype(logits.dtype)
    entropy = torch.zeros((), dtype=dtype, device=logits.device)
    correct = torch.zeros((), dtype=torch.long, device=logits.device)
    for sl in row_slices(rows.numel(), k):
        idx = rows[sl]
        e, c = _sums(flat_logits.index_select(0, idx).to(dtype), flat[idx])
        entropy, correct = entropy + e, correct + c
    return TokenMetrics(entropy, correct, torch.tensor(rows.numel(), device=logits.device))


@torch.no_grad()
def fused_token_metrics(hidden: Tensor, weight: Tensor, target: Tensor, *, bias: Tensor | None = None,
                        ignore_index: int | None = IGNORE_INDEX) -> TokenMetrics:
    """:func:`token_metrics` of the logits ``hidden @ weight.T + bias``, computed a chunk of rows
    at a time (the logits of the whole batch are never held).

    Args:
        hidden: ``[..., d]`` hidden states.
        weight: ``[V, d]`` the output layer's weight.
        target: ``[...]`` class indices.
        bias: ``[V]`` or None.
        ignore_index: the target of positions left out.

    Returns:
        A :class:`TokenMetrics` of 0-d tensors on the hidden states' device.

    Example:
        >>> import torch
        >>> hidden, weight, target = torch.randn(6, 4), torch.randn(5, 4), torch.tensor([0, 1, 2, -100, 4, 4])
        >>> fused, plain = fused_token_metrics(hidden, weight, target), token_metrics(hidden @ weight.T, target)
        >>> bool(torch.allclose(fused.entropy, plain.entropy)), int(fused.correct) == int(plain.correct)
        (True, True)
    """
    flat_hidden = hidden.reshape(-1, hidden.size(-1))
    rows, flat = _rows(target, ignore_index)
    v = weight.size(0)
    dtype = compute_dtype(hidden.dtype)
    entropy = torch.zeros((), dtype=dtype, device=hidden.device)
    correct = torch.zeros((), dtype=torch.long, device=hidden.device)
    for sl in row_slices(rows.numel(), v):
        idx = rows[sl]
        z = torch.nn.functional.linear(flat_hidden.index_select(0, idx), weight, bias).to(dtype)
        e, c = _sums(z, flat[idx])
        entropy, correct = entropy + e, correct + c
    return TokenMetrics(entropy, correct, torch.tensor(rows.numel(), device=hidden.device))
