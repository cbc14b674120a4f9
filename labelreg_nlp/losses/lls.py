"""Learnable Label Smoothing (LLS): a learned distribution per class, symmetric KL.

From "LLS: Regulating Neural Network Training via Learnable Label Smoothing" (ICLR 2025
submission, OpenReview VmW7Sf84sj), Eq. 4-5 and the pseudo code of Appendix A. A parameter ``Q``
[K, K], zeros at init, and

    t    = (1 - alpha) onehot(y) + alpha softmax(Q[y])                          (Eq. 4)
    loss = (KL(t || p) + KL(p || t)) / 2                                       (Eq. 5)

both the network and ``Q`` trained by both terms (no stop gradient); alpha = 0.1 in the paper.
Gradients per position, with ``p = softmax(z)``, ``q = softmax(Q[y])``, ``d = log t - log p``::

    d KL(t||p) / d z      = p - t
    d KL(p||t) / d z      = -p * (d + KL(p||t))
    d KL(t||p) / d Q[y]_j = alpha q_j (d_j - sum_k q_k d_k)                     (Appendix B, Eq. 16)
    d KL(p||t) / d Q[y]_j = -(w_j - q_j sum_k w_k),  w_k = alpha q_k p_k / t_k

``KL(p || t)`` is finite only for alpha > 0 (``t`` has no zero entry then).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .learned import (
    DEFAULT_RANK,
    FULL_MAX_CLASSES,
    ChunkTerms,
    Kernel,
    LearnedTableOptions,
    LearnedTargetLoss,
    add_at,
    add_class_rows,
    class_rows,
    class_sums,
    per_class,
    rowdot,
    softmax_and_lse,
)
from .options import option

#: log p below this is clamped to it: exp() of it is 0 in float32 and float64 alike, so no p
#: changes, and p log p is 0 (not 0 * -inf = NaN) at a masked class (logit -inf)
LOG_ZERO = -1e4


class LLSKernel(Kernel):
    """Forward term ``KL(t || p)`` and reverse term ``KL(p || t)`` per position; ``q_y``, ``t``
    and ``log t`` once per class of the chunk.

    With ``q_y . log p = q_y . z - lse(z)`` and ``t . log p = alpha q_y . log p + (1 - alpha)
    log p_y``, a position needs two dot products with its class's rows (``q_y . z`` and
    ``p . log t``) besides its own softmax.
    """

    @staticmethod
    def _target(r: Tensor, lse_r: Tensor, classes: Tensor, alpha: float,
                q: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``q`` and ``t = (1 - alpha) onehot(y) + alpha q`` per class row, and ``log t`` written
        over ``r`` (``q``: ``softmax(r)`` when already computed)."""
        col = classes[:, None]
        log_q = r.sub_(lse_r[:, None])
        q = log_q.exp() if q is None else q
        t = add_at(torch.mul(q, alpha), col, torch.ones_like(q[:, :1]).mul_(1 - alpha))
        log_t = log_q.add_(math.log(alpha)).scatter_(1, col, t.gather(1, col).log())
        return q, t, log_t

    def forward(self, z: Tensor, r: Tensor, classes: Tensor, inv: Tensor, alpha: float) -> ChunkTerms:
        col, cls = classes[inv][:, None], classes[:, None]
        p, lse = softmax_and_lse(z)
        q, lse_r = softmax_and_lse(r)
        q, t, log_t = self._target(r, lse_r, classes, alpha, q)
        # per class: entropy of q from log t (log q = log t - log alpha off the class), t . log t, q . log t
        q_c, log_t_c = q.gather(1, cls).squeeze(1), log_t.gather(1, cls).squeeze(1)
        q_log_t = rowdot(q, log_t)
        entropy = -(q_log_t - math.log(alpha) * (1 - q_c) - q_c * log_t_c) - torch.xlogy(q_c, q_c)
        t_log_t = alpha * q_log_t + (1 - alpha) * log_t_c  # t = alpha q + (1 - alpha) onehot
        # per position; q > 0 everywhere, so a masked class makes q . log p = -inf: KL(t || p) = +inf
        q_pos = class_rows(q, inv)
        q_log_p = rowdot(q_pos, z) - lse
        t_log_p = alpha * q_log_p
        if alpha < 1:  # (1 - alpha) log p_y; skipped at alpha = 1, where 0 * -inf would be NaN
            t_log_p = t_log_p + (1 - alpha) * (z.gather(1, col).squeeze(1) - lse)
        forward = t_log_t.index_select(0, inv) - t_log_p
        q_d = q_log_t.index_select(0, inv) - q_log_p  # q . (log t - log p)
        log_p = torch.sub(z, lse[:, None]).clamp_min_(LOG_ZERO)
        reverse = rowdot(p, log_p) - rowdot(p, class_rows(log_t, inv))
        saved = torch.stack([lse, lse_r.index_select(0, inv), reverse, q_d], dim=1)
        stats = torch.stack([entropy, q.amax(-1)], dim=1).index_select(0, inv)
        return ChunkTerms(torch.stack([forward, reverse], dim=1), saved, stats)

    def backward(self, z: Tensor, r: Tensor, classes: Tensor, inv: Tensor, alpha: float, saved: Tensor,
                 g: Tensor) -> tuple[Tensor, Tensor]:
        col, cls = classes[inv][:, None], classes[:, None]
        g_fwd, g_rev = g[:, :1], g[:, 1:2]
        log_p = torch.sub(z, saved[:, :1]).clamp_min_(LOG_ZERO)
        p = log_p.exp()
        q, t, log_t = self._target(r, per_class(saved[:, 1], inv, r.size(0)), classes, alpha)

        def sums(x: Tensor) -> Tensor:  # [n, 1] -> [U, 1], summed over each class's positions
            return class_sums(x.squeeze(1), inv, q.size(0))[:, None]

        p_y = p.gather(1, col)
        q_y, t_y = q.gather(1, cls).index_select(0, inv), t.gather(1, cls).index_select(0, inv)
        # w = alpha q p / t is p off the target; sum_k w_k = 1 - p_y + w_y
        w_y = alpha * q_y * p_y / t_y
        w_sum = 1 - p_y + w_y
        # per class, summed over its positions: alpha g_fwd q (d - q . d) - g_rev (w - q sum w),
        # d = log t - log p
        grad_r = add_class_rows(torch.mul(log_t, sums(g_fwd)), inv, log_p, g_fwd, -1.0)
        grad_r.sub_(sums(g_fwd * saved[:, 3:4])).mul_(q).mul_(alpha)
        add_class_rows(grad_r.addcmul_(q, sums(g_rev * w_sum)), inv, p, g_rev, -1.0)
        add_at(grad_r, cls, sums(g_rev * (p_y - w_y)))
        # p (g_fwd - g_rev (d + KL(p||t))) - g_fwd t; p = 0 at a masked class, where log p is clamped
        # log t and t are not read again: their rows may be written over
        grad_z = class_rows(log_t, inv).sub_(log_p).add_(saved[:, 2:3]).mul_(-g_rev).add_(g_fwd).mul_(p)
        return grad_z.sub_(class_rows(t, inv).mul_(g_fwd)), grad_r


class LearnableLabelSmoothing(LearnedTargetLoss):
    """LLS as a module (the ``lls`` method); its table is a learnable parameter.

    Args:
        num_classes: K.
        alpha: weight of ``softmax(Q[y])`` in the target, in (0, 1] (paper: 0.1).
        rank: factored table ``Q[y] = u_y V^T`` of this rank (vocabulary scale); ``None``: the
            full K x K table up to 2048 classes, rank 64 above.
        full: force the full table.

    ``loss = (KL(t||p) + KL(p||t)) / 2`` per position; ``LossParts.penalty`` sums ``KL(p||t)``.

    Example:
        >>> import torch
        >>> lls = LearnableLabelSmoothing(4, alpha=0.1)
        >>> lls.table.weight.shape
        torch.Size([4, 4])
        >>> logits = torch.zeros(1, 4)  # p uniform, t = (0.925, 0.025, 0.025, 0.025)
        >>> t = torch.tensor([0.925, 0.025, 0.025, 0.025])
        >>> kl = (t * (t / 0.25).log()).sum() + (0.25 * (0.25 / t).log()).sum()
        >>> torch.allclose(lls(logits, torch.tensor([0])), kl / 2)
        True
    """

    kernel = LLSKernel()
    exclude_target = False
    NAME, TITLE = "lls", "LLS"
    ALPHA_WHY = "KL(p || t) is infinite at 0"


@dataclass(frozen=True)
class LLSOptions(LearnedTableOptions):
    """Options of Learnable Label Smoothing (``lls``).

    Example:
        >>> LLSOptions(alpha=0.1, rank=8).build(num_classes=100).table.u.shape
        torch.Size([100, 8])
    """

    loss = LearnableLabelSmoothing
    alpha: float = option(0.1, "weight of the learned distribution softmax(Q[y]) in the target (paper: 0.1)", valid="(0, 1]")
    rank: int | None = option(None, f"factored table Q[y] = u_y V^T of this rank (vocabulary scale; default: the "
                                    f"full table up to {FULL_MAX_CLASSES} classes, else rank {DEFAULT_RANK})",
                              valid=">= 1")
    full: bool = option(False, "force the full table (K x K parameters)")
