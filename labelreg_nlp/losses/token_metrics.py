"""What trainers log about a batch's predictions beside the loss: the entropy of the predicted
distribution and the top-1 hits, over the counted positions, without gradients, in row chunks
(from the logits, or from the hidden states and the output layer without holding ``[N, V]``).

Per position with logits ``z`` (float32) and ``p = softmax(z)``:

    entropy = lse(z) - sum_k p_k z_k          (nats; a class with p_k = 0 adds nothing)
    hit     = [first arg-max of z == target]
"""

from __future__ import annotations

from collections.abc import Callable
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


def _chunked(target: Tensor, ignore_index: int | None, n_classes: int, dtype: torch.dtype, device: torch.device,
             chunk_logits: Callable[[Tensor], Tensor]) -> TokenMetrics:
    """The sums over the counted positions, ``chunk_logits(rows)`` giving the logits of a chunk
    of rows of the flattened batch."""
    flat = target.reshape(-1)
    if ignore_index is None:
        rows = torch.arange(flat.numel(), device=flat.device)
    else:
        rows = (flat != ignore_index).nonzero().squeeze(-1)
    entropy = torch.zeros((), dtype=dtype, device=device)
    correct = torch.zeros((), dtype=torch.long, device=device)
    for sl in row_slices(rows.numel(), n_classes):
        z = chunk_logits(rows[sl]).to(dtype)
        p, lse = softmax_and_lse(z)
        weighted = torch.where(p > 0, p * z, torch.zeros((), dtype=z.dtype, device=z.device))
        entropy = entropy + (lse - weighted.sum(-1)).sum()
        correct = correct + (first_argmax(z) == flat[rows[sl]]).sum()
    return TokenMetrics(entropy, correct, torch.tensor(rows.numel(), device=device))


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
    flat_logits = logits.reshape(-1, logits.size(-1))
    return _chunked(target, ignore_index, logits.size(-1), compute_dtype(logits.dtype), logits.device,
                    lambda rows: flat_logits.index_select(0, rows))


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
    return _chunked(target, ignore_index, weight.size(0), compute_dtype(hidden.dtype), hidden.device,
                    lambda rows: torch.nn.functional.linear(flat_hidden.index_select(0, rows), weight, bias))
