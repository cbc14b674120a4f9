"""Label Smoothing++ (LS++): a learned distribution over the other classes, symmetric CE with stop gradients.

From "Label Smoothing++: Enhanced Label Regularization for Training Neural Networks" (Chhabra,
Venkateswara and Li, arXiv 2509.05307), Section 3.2. A parameter ``C`` [K, K - 1], zeros at init:
``c_y = softmax(C[y])`` placed on the K - 1 classes other than ``y`` (0 at ``y``), and

    t    = (1 - alpha) onehot(y) + alpha c_y                                   (Eq. 3)
    loss = 1/2 [ CE(sg(t), p) + CE(sg(p), t) ]
         = 1/2 [ -sum_k t_k log p_k  -  sum_k p_k log t_k ]

``sg`` stops the gradient: the network learns only from the first (forward) term, ``C`` only
from the second (reverse) term. Gradients per position, with ``p = softmax(z)``::

    d loss / d z      = (p - t) / 2
    d loss / d r_y[j] = ((1 - p_y) c_y[j] - p_j) / 2      (j != y; r_y = the logits of c_y)

The authors' code adds 1e-6 inside both logarithms; here they are exact, which needs
``0 < alpha < 1`` (``log t`` is finite off the target only for alpha > 0, on it only for alpha < 1).
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


class LSPPKernel(Kernel):
    """Forward term ``CE(sg(t), p)`` and reverse term ``CE(sg(p), t)`` per position; ``c_y``, its
    logarithm and its normaliser once per class of the chunk."""

    def forward(self, z: Tensor, r: Tensor, classes: Tensor, inv: Tensor, alpha: float) -> ChunkTerms:
        y = classes[inv]
        col = y[:, None]
        p, lse = softmax_and_lse(z)
        q, lse_r = softmax_and_lse(r)  # [U, K], 0 at each row's class
        log_q = r.sub_(lse_r[:, None])  # -inf at each row's class
        q_pos = class_rows(q, inv)
        z_y = z.gather(1, col).squeeze(1)
        forward = lse - (1 - alpha) * z_y - alpha * rowdot(q_pos, z)
        # a masked target (z_y = -inf) costs +inf, as -log p_y; q_y z_y = 0 * -inf made it NaN
        forward = torch.where(torch.isneginf(z_y) & torch.isfinite(lse), math.inf, forward)
        p_y = p.gather(1, col).squeeze(1)
        log_q.scatter_(1, classes[:, None], 0.0)  # p_y log t_y is taken apart below
        reverse = -(p_y * math.log1p(-alpha) + (1 - p_y) * math.log(alpha) + rowdot(p, class_rows(log_q, inv)))
        stats = torch.stack([-rowdot(q, log_q), q.amax(-1)], dim=1).index_select(0, inv)
        saved = torch.stack([lse, lse_r.index_select(0, inv)], dim=1)
        return ChunkTerms(torch.stack([forward, reverse], dim=1), saved, stats)

    def backward(self, z: Tensor, r: Tensor, classes: Tensor, inv: Tensor, alpha: float, saved: Tensor,
                 g: Tensor) -> tuple[Tensor, Tensor]:
        col = classes[inv][:, None]
        p = torch.sub(z, saved[:, :1]).exp_()
        q = r.sub_(per_class(saved[:, 1], inv, r.size(0))[:, None]).exp_()  # [U, K], 0 at each row's class
        p_y = p.gather(1, col)
        g_fwd, g_rev = g[:, :1], g[:, 1:2]
        # per class: sum over its positions of g_rev ((1 - p_y) q - p), 0 at the class
        weight = class_sums((g_rev * (1 - p_y)).squeeze(1), inv, q.size(0))
        grad_r = add_class_rows(torch.mul(q, weight[:, None]), inv, p, g_rev, -1.0)
        grad_r.scatter_(1, classes[:, None], 0.0)
        # g_fwd (p - t), t = alpha q + (1 - alpha) onehot(y)
        q_pos = class_rows(q, inv).mul_(alpha)  # q is not read again
        grad_z = add_at(p.sub_(q_pos).mul_(g_fwd), col, g_fwd * (alpha - 1))
        return grad_z, grad_r


class LabelSmoothingPlusPlus(LearnedTargetLoss):
    """LS++ as a module (the ``lspp`` method); its table is a learnable parameter.

    Args:
        num_classes: K.
        alpha: weight of ``c_y`` in the target, in (0, 1) (paper: 0.1).
        rank: factored table ``C[y] = u_y V^T`` of this rank (vocabulary scale); ``None``: the
            full K x (K - 1) table up to 2048 classes, rank 64 above.
        full: force the full table.

    ``loss = (forward + reverse) / 2`` per position; ``LossParts.penalty`` sums the reverse term.

    Example:
        >>> import torch
        >>> lspp = LabelSmoothingPlusPlus(4, alpha=0.1)
        >>> lspp.table.weight.shape  # the paper's C matrix, zeros: c_y uniform on the 3 other classes
        torch.Size([4, 3])
        >>> logits = torch.zeros(1, 4, requires_grad=True)
        >>> loss = lspp(logits, torch.tensor([0]))
        >>> loss.backward()
        >>> logits.grad  # (p - t) / 2 with p = 1/4, t = (0.9, 0.1/3, 0.1/3, 0.1/3)
        tensor([[-0.3250,  0.1083,  0.1083,  0.1083]])
    """

    kernel = LSPPKernel()
    exclude_target = True
    NAME, TITLE = "lspp", "LS++"
    ALPHA_ONE, ALPHA_WHY = False, "log t must be finite on and off the target"


@dataclass(frozen=True)
class LSPPOptions(LearnedTableOptions):
    """Options of Label Smoothing++ (``lspp``).

    Example:
        >>> LSPPOptions(alpha=0.1, rank=8).build(num_classes=100).table.u.shape
        torch.Size([100, 8])
    """

    loss = LabelSmoothingPlusPlus
    alpha: float = option(0.1, "weight of the learned distribution c_y in the target (paper: 0.1)", valid="(0, 1)")
    rank: int | None = option(None, f"factored table C[y] = u_y V^T of this rank (vocabulary scale; default: the "
                                    f"full table up to {FULL_MAX_CLASSES} classes, else rank {DEFAULT_RANK})",
                              valid=">= 1")
    full: bool = option(False, "force the full table (K x (K - 1) parameters)")
