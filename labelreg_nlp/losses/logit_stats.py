"""Per-row logit statistics with a memory-light, float32 backward.

Every loss in this package is a linear combination, per row, of these statistics of the logits
``z`` (one row per token or sample, K classes):

    lse   = log sum_k exp(z_k)         d lse / dz   = softmax(z)
    z_y   = z[target]                  d z_y / dz   = onehot(target)
    z_bar = (1/K) sum_k z_k            d z_bar / dz = 1/K
    z_max = max_k z_k                  d z_max / dz = onehot(argmax z)   (first arg-max on ties)
    z_extra = z[extra_index]           (optional, e.g. the classes of a sparse soft label)

e.g. ``nll = lse - z_y`` and the MaxSup penalty ``z_max - z_bar`` (MaxSup paper, Appendix D). Computing them in one autograd
function lets the forward walk the logits in row chunks cast to float32 and keep only the input
and O(N) values for the backward, instead of a float32 [N, K] log-softmax per loss term.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

# Rows per chunk are chosen so one float32 chunk holds about this many elements (16 MiB).
CHUNK_ELEMENTS = 1 << 22


class LogitStats(NamedTuple):
    lse: Tensor  # [N], float32 (float64 for float64 logits)
    z_target: Tensor  # [N]
    z_mean: Tensor  # [N]
    z_max: Tensor  # [N]
    argmax: Tensor  # [N] int64, not differentiable
    z_extra: Tensor  # [N, M] logits at the extra indices (M = 0 when none were asked for)
    top_logit: Tensor  # [N, T] top-T logits of rows whose arg-max is the target (T = 0 unless asked)
    top_index: Tensor  # [N, T] their classes; rows not predicted correctly hold zeros


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half/bfloat16/float32 logits, float64 for float64 ones."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def row_slices(n_rows: int, n_classes: int, fraction: int = 1, min_rows: int = 1) -> list[slice]:
    """Slices of rows such that one float32 chunk of ``n_classes`` columns holds about
    :data:`CHUNK_ELEMENTS` / ``fraction`` elements, and at least ``min_rows`` rows."""
    step = max(min_rows, 1, CHUNK_ELEMENTS // fraction // max(1, n_classes))
    return [slice(start, start + step) for start in range(0, n_rows, step)]


# Columns per strided block (block j = columns j, j + B, ...), for the CPU row max/arg-max and
# the top-k of correct rows; 16 measured fastest at K = 10k to 50k.
BLOCK_COLUMNS = 16


def _block_max(z: Tensor) -> Tensor:
    """Maxima [N, B] of the B = K // s strided blocks of each row (block j = columns j, j + B, ...)."""
    n_blocks = z.size(1) // BLOCK_COLUMNS
    return z[:, : n_blocks * BLOCK_COLUMNS].view(z.size(0), BLOCK_COLUMNS, n_blocks).amax(dim=1)


def _max_and_block_max(z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``z.max(-1)`` (row max and first arg-max, exactly) plus the maxima of the B = K // s
    strided blocks (block j = columns j, j + B, ...), for K >= 2 s.

    On CPU a strided ``amax`` vectorizes across blocks and costs about a third of a row-wise
    max with indices; the arg-max then comes from the one block holding the max (s columns).
    Rows where that is ambiguous (the max in several blocks or in the K - B s leftover columns,
    NaN, all -inf) fall back to ``torch.max``.
    """
    n, k = z.shape
    s = BLOCK_COLUMNS
    n_blocks = k // s
    block_max = _block_max(z)
    z_max = block_max.amax(dim=-1)
    holds = block_max == z_max[:, None]
    ambiguous = holds.sum(-1) != 1
    if n_blocks * s < k:
        ambiguous |= ~(z[:, n_blocks * s:].amax(dim=-1) < z_max)  # ~(<): a NaN there too
    block = holds.byte().argmax(dim=-1)
    cols = block[:, None] + torch.arange(s, device=z.device) * n_blocks
    inside = torch.take(z, torch.arange(n, device=z.device)[:, None] * k + cols)
    argmax = block + (inside == z_max[:, None]).byte().argmax(dim=-1) * n_blocks
    odd = ambiguous.nonzero().squeeze(-1)
    if odd.numel():
        z_max[odd], argmax[odd] = z[odd].max(dim=-1)
    return z_max, argmax, block_max


def first_argmax(z: Tensor) -> Tensor:
    """``z.argmax(-1)`` of a 2-D ``z`` (the first arg-max on ties, NaN counted as the largest),
    through the strided block maxima on CPU where ``K >= 2 s`` (a third of ``argmax``'s time at
    K = 10k on a 2-core CPU).

    Example:
        >>> import torch
        >>> z = torch.randn(3, 100)
        >>> z[1, 7] = z[1, 90] = 50.0
        >>> bool((first_argmax(z) == z.argmax(-1)).all()), int(first_argmax(z)[1])
        (True, 7)
    """
    if z.is_cuda or z.size(1) < 2 * BLOCK_COLUMNS:
        return z.argmax(dim=-1)
    return _max_and_block_max(z)[1]


def _topk_of_rows(z: Tensor, rows: Tensor, top: int, block_max: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """``z[rows].topk(top)`` (values, then indices; not sorted) without copying or sorting whole rows.

    Columns are grouped into B = K // s strided blocks (block j = columns j, j + B, ...). Every
    element of the row's top-T lies in one of the T blocks with the largest maxima: an element
    outside them is below T block maxima, i.e. below T distinct elements. So the exact top-T is
    the top-T of those T * s candidates (plus the K - B * s leftover columns), found after one
    streaming max over the chunk instead of a partial sort of K columns per row.
    ``block_max``: the block maxima of every row of ``z``, when already computed.
    """
    n_cols = z.size(1)
    s = BLOCK_COLUMNS
    n_blocks = n_cols // s
    if n_blocks < 2 * top:  # too few blocks to gain anything
        return z[rows].topk(top, dim=-1)
    if block_max is None:
        block_max = _block_max(z)
    _, blocks = block_max[rows].topk(top, dim=-1, sorted=False)  # [R, T]
    # candidate j * T + t is column blocks[:, t] + j * B, read straight from z
    offsets = torch.arange(s, device=z.device) * n_blocks
    flat = ((rows * n_cols)[:, None] + blocks)[:, None, :] + offsets[None, :, None]
    cand = torch.take(z, flat.view(rows.numel(), -1))
    if n_blocks * s < n_cols:  # the leftover columns are candidates too, after the blocks
        cand = torch.cat([cand, z[rows, n_blocks * s:]], dim=1)
    vals, pos = cand.topk(top, dim=-1, sorted=False)
    in_block = pos < s * top
    cols = blocks.gather(1, (pos % top).masked_fill_(~in_block, 0)) + (pos // top) * n_blocks
    return vals, torch.where(in_block, cols, pos - s * top + n_blocks * s)


class _LogitStatsFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, extra_index: Tensor, top: int):  # type: ignore[override]
        n, k = logits.shape
        dtype = compute_dtype(logits.dtype)
        lse, z_t, z_mean, z_max = (torch.empty(n, dtype=dtype, device=logits.device) for _ in range(4))
        argmax = torch.empty(n, dtype=torch.long, device=logits.device)
        top_logit = torch.zeros(n, top, dtype=dtype, device=logits.device)
        top_index = torch.zeros(n, top, dtype=torch.long, device=logits.device)
        for sl in row_slices(n, k):
            z = logits[sl].to(dtype)
            lse[sl] = torch.logsumexp(z, dim=-1)
            z_t[sl] = z.gather(-1, target[sl, None]).squeeze(-1)
            z_mean[sl] = z.mean(dim=-1)
            if not z.is_cuda and k >= 2 * BLOCK_COLUMNS:  # CPU: faster than z.max; top-T reuses block_max
                z_max[sl], argmax[sl], block_max = _max_and_block_max(z)
            else:
                z_max[sl], argmax[sl] = z.max(dim=-1)
                block_max = None
            if top:  # while the chunk is in cache: top-T of the correctly predicted rows
                hit = (argmax[sl] == target[sl]).nonzero().squeeze(-1)
                if hit.numel():
                    top_logit[sl][hit], top_index[sl][hit] = _topk_of_rows(z, hit, top, block_max)
        z_extra = logits.gather(1, extra_index).to(dtype)
        ctx.save_for_backward(logits, target, lse, argmax, extra_index)
        ctx.mark_non_differentiable(argmax, top_logit, top_index)
        return lse, z_t, z_mean, z_max, argmax, z_extra, top_logit, top_index

    @staticmethod
    def backward(ctx, g_lse, g_target, g_mean, g_max, _g_argmax, g_extra, _g_top, _g_top_index):  # type: ignore[override]
        logits, target, lse, argmax, extra_index = ctx.saved_tensors
        n, k = logits.shape
        dtype = lse.dtype
        zeros = torch.zeros(n, dtype=dtype, device=logits.device)
        g_lse, g_target, g_mean, g_max = (
            zeros if g is None else g.to(dtype) for g in (g_lse, g_target, g_mean, g_max)
        )
        has_extra = g_extra is not None and extra_index.size(1) > 0
        grad = torch.empty_like(logits)
        in_place = grad.dtype == dtype  # else compute in float32 and cast once per chunk
        for sl in row_slices(n, k):
            z = logits[sl].to(dtype)
            g = torch.sub(z, lse[sl, None], out=grad[sl] if in_place else None)
            g.exp_().mul_(g_lse[sl, None])
            g.add_((g_mean[sl] / k)[:, None])
            g.scatter_add_(-1, target[sl, None], g_target[sl, None])
            g.scatter_add_(-1, argmax[sl, None], g_max[sl, None])
            if has_extra:
                g.scatter_add_(-1, extra_index[sl], g_extra[sl].to(dtype))
            # Rows whose every upstream gradient is zero (ignored positions) get an exact zero,
            # even when their logits are inf/NaN.
            live = (g_lse[sl] != 0) | (g_target[sl] != 0) | (g_mean[sl] != 0) | (g_max[sl] != 0)
            if has_extra:
                live |= (g_extra[sl] != 0).any(-1)
            dead = (~live).nonzero().squeeze(-1)
            if dead.numel():
                g.index_fill_(0, dead, 0.0)
            if not in_place:
                grad[sl] = g
        return grad, None, None, None


def logit_stats(logits: Tensor, target: Tensor, extra_index: Tensor | None = None, top: int = 0) -> LogitStats:
    """Statistics of ``logits`` [N, K] for ``target`` [N] (int64, already inside [0, K)).

    ``extra_index`` [N, M] (int64): also return ``logits.gather(1, extra_index)`` as ``z_extra``,
    its gradient folded into the same chunked backward (no second [N, K] gradient).
    ``top`` > 0: also the top-``top`` logits and classes of the rows whose arg-max is the target
    (what Online Label Smoothing accumulates), taken while each chunk is in cache.

    Returns:
        :class:`LogitStats`; ``lse``, ``z_target``, ``z_mean``, ``z_max`` and ``z_extra`` are
        differentiable, with one chunked backward writing one gradient of the logits' dtype.

    Example:
        >>> import torch
        >>> stats = logit_stats(torch.tensor([[1.0, 3.0, 2.0]]), torch.tensor([2]))
        >>> float(stats.z_target), float(stats.z_mean), float(stats.z_max), int(stats.argmax)
        (2.0, 2.0, 3.0, 1)
    """
    if logits.dim() != 2:
        raise ValueError(f"logit_stats expects logits [N, K], got shape {tuple(logits.shape)}")
    if extra_index is None:
        extra_index = torch.zeros(logits.size(0), 0, dtype=torch.long, device=logits.device)
    return LogitStats(*_LogitStatsFn.apply(logits, target, extra_index, int(top)))
