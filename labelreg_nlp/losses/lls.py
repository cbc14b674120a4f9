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

from .learned import DEFAULT_RANK, FULL_MAX_CLASSES, ChunkTerms, Kernel, LearnedTargetLoss, rowdot
from .options import Label, option, same_name


def _where_p(d: Tensor, p: Tensor) -> Tensor:
    """``d`` with 0 where ``p`` is 0 and ``d`` infinite: a masked class (logit -inf) adds
    ``p log(p / t) = 0`` to ``KL(p || t)``, not ``0 * inf = NaN``."""
    return torch.where((p == 0) & torch.isinf(d), torch.zeros((), dtype=d.dtype, device=d.device), d)


class LLSKernel(Kernel):
    """Forward term ``KL(t || p)`` and reverse term ``KL(p || t)`` per position."""

    @staticmethod
    def _target(r: Tensor, lse_r: Tensor, y: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
        """``q`` and ``t = (1 - alpha) onehot(y) + alpha q``, and ``log t`` written over ``r``."""
        col = y[:, None]
        log_q = r.sub_(lse_r[:, None])
        q = log_q.exp()
        t = torch.mul(q, alpha).scatter_add_(1, col, torch.full_like(q[:, :1], 1 - alpha))
        log_t = log_q.add_(math.log(alpha)).scatter_(1, col, t.gather(1, col).log())
        return q, t, log_t

    def forward(self, z: Tensor, r: Tensor, y: Tensor, alpha: float) -> ChunkTerms:
        lse = torch.logsumexp(z, dim=-1)
        lse_r = torch.logsumexp(r, dim=-1)
        log_p = z - lse[:, None]
        q, t, log_t = self._target(r, lse_r, y, alpha)
        # entropy of q from log t: log q = log t - log alpha off the target
        col = y[:, None]
        q_y = q.gather(1, col).squeeze(1)
        log_t_y = log_t.gather(1, col).squeeze(1)
        entropy = -(rowdot(q, log_t) - math.log(alpha) * (1 - q_y) - q_y * log_t_y) - torch.xlogy(q_y, q_y)
        d = log_t.sub_(log_p)  # log t - log p
        forward = rowdot(t, d)
        q_d = rowdot(q, d)
        p = log_p.exp_()
        reverse = -rowdot(p, _where_p(d, p))
        saved = torch.stack([lse, lse_r, reverse, q_d], dim=1)
        return ChunkTerms(torch.stack([forward, reverse], dim=1), saved, torch.stack([entropy, q.amax(-1)], dim=1))

    def backward(self, z: Tensor, r: Tensor, y: Tensor, alpha: float, saved: Tensor,
                 g: Tensor) -> tuple[Tensor, Tensor]:
        col = y[:, None]
        g_fwd, g_rev = g[:, :1], g[:, 1:2]
        log_p = z - saved[:, :1]
        q, t, log_t = self._target(r, saved[:, 1], y, alpha)
        d = log_t.sub_(log_p)
        p = log_p.exp_()
        d_p = _where_p(d, p)  # where it meets p: 0 at masked classes, as p log(p / t) -> 0
        p_y, q_y, t_y = p.gather(1, col), q.gather(1, col), t.gather(1, col)
        # w = alpha q p / t is p off the target; sum_k w_k = 1 - p_y + w_y
        w_y = alpha * q_y * p_y / t_y
        w_sum = 1 - p_y + w_y
        # grad_z = p (g_fwd - g_rev (d + KL(p||t))) - g_fwd t
        grad_z = torch.add(d_p, saved[:, 2:3]).mul_(-g_rev).add_(g_fwd).mul_(p).sub_(t.mul_(g_fwd))
        # grad_r = alpha g_fwd q (d - sum q d) - g_rev (w - q sum w)
        grad_r = d.sub_(saved[:, 3:4]).mul_(q).mul_(alpha * g_fwd)
        grad_r.addcmul_(q, g_rev * w_sum).addcmul_(p, -g_rev)
        grad_r.scatter_add_(1, col, g_rev * (p_y - w_y))
        return grad_z, grad_r


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
class LLSOptions:
    """Options of Learnable Label Smoothing (``lls``).

    Example:
        >>> LLSOptions(alpha=0.1, rank=8).build(num_classes=100).table.u.shape
        torch.Size([100, 8])
    """

    alpha: float = option(0.1, "weight of the learned distribution softmax(Q[y]) in the target (paper: 0.1)", valid="(0, 1]")
    rank: int | None = option(None, f"factored table Q[y] = u_y V^T of this rank (vocabulary scale; default: the "
                                    f"full table up to {FULL_MAX_CLASSES} classes, else rank {DEFAULT_RANK})",
                              valid=">= 1")
    full: bool = option(False, "force the full table (K x K parameters)")

    def validate(self, label: Label = same_name) -> None:
        """``ValueError`` (or ``TypeError``) naming the first bad option, spelled by ``label``."""
        LearnableLabelSmoothing.check_alpha(self.alpha, label("alpha"))
        LearnableLabelSmoothing.check_table(self.rank, self.full, label("rank"), label("full"))

    def build(self, num_classes: int | None = None, schedule_horizon: int | None = None) -> LearnableLabelSmoothing:
        """The loss module over ``num_classes`` (required; ``schedule_horizon`` is not used)."""
        if num_classes is None:
            raise ValueError("method 'lls' needs num_classes (the size of the label set or vocabulary)")
        return LearnableLabelSmoothing(num_classes, alpha=self.alpha, rank=self.rank, full=self.full)
