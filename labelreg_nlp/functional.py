"""Stateless label-regularization losses over logits ``[..., K]`` and targets ``[...]``.

Every loss here has the form ``loss = nll + c * penalty`` per position, where ``nll`` is the
unsmoothed cross-entropy and ``penalty`` a logit gap (MaxSup paper,
``shared/papers/000_8081c041bc3a65ca.txt``):

* Label Smoothing, Lemma 3.2 + Theorem 3.3: ``H(s, q) = H(y, q) + alpha * (z_gt - mean_k z_k)``
  with ``s = (1-alpha) y + alpha/K`` ("uniform": torch, HF, the paper). fairseq's
  ``label_smoothed_nll_loss`` puts ``1-alpha`` on the target and ``alpha/(V-1)`` on the others,
  which is the same identity with ``c = alpha * K/(K-1)`` ("fairseq").
* Max Suppression, Algorithm 1: ``H(y, q) + alpha * (z_max - mean_k z_k)``; no detach, the
  gradient reaches the arg-max logit and, through the mean, every logit (Appendix C).

Positions whose target equals ``ignore_index`` contribute nothing to any term. Logits may be any
float dtype; the math runs in float32, or float64 for float64 logits (see :mod:`labelreg_nlp.logit_stats`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .logit_stats import logit_stats

Reduction = Literal["mean", "sum", "none"]
Convention = Literal["uniform", "fairseq"]
REDUCTIONS = ("mean", "sum", "none")
CONVENTIONS = ("uniform", "fairseq")


@dataclass
class LossParts:
    """Summed terms of one batch, so adapters can log without recomputing.

    ``nll`` is the unsmoothed cross-entropy and ``penalty`` the method's regularizer before its
    weight: LS and MaxSup give ``loss = nll + coef * penalty``, OLS
    ``loss = hard_weight * nll + soft_weight * penalty``. ``per_position`` is the loss per
    position (shape of the targets, zeros where ignored), kept only when asked for.
    """

    loss: Tensor  # scalar float32, summed over non-ignored positions
    nll: Tensor  # scalar float32, summed unsmoothed cross-entropy
    penalty: Tensor  # scalar float32, summed regularizer before its weight
    ntokens: Tensor  # scalar int64, non-ignored positions
    ncorrect: Tensor  # scalar int64, non-ignored positions whose arg-max is the target
    per_position: Tensor | None = None

    def reduce(self, reduction: Reduction) -> Tensor:
        """The loss under ``reduction``: ``"sum"``, ``"mean"`` (over non-ignored positions;
        0 when there are none) or ``"none"`` (per position)."""
        check_reduction(reduction)
        if reduction == "sum":
            return self.loss
        if reduction == "mean":
            return self.loss / self.ntokens.clamp(min=1)
        if self.per_position is None:
            raise ValueError("per-position losses were not kept; compute with keep_per_position=True")
        return self.per_position


def check_alpha(alpha: float, name: str = "alpha") -> float:
    """Return ``alpha`` as a float, or raise ``ValueError`` naming it if outside [0, 1]."""
    value = float(alpha)
    if not (0.0 <= value <= 1.0):  # also rejects NaN
        raise ValueError(f"{name} must be in [0, 1], got {alpha!r}")
    return value


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _flatten(logits: Tensor, target: Tensor, ignore_index: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """Validate, then return logits [N, K], safe targets [N] (ignored -> 0) and the mask [N]."""
    if not torch.is_tensor(logits) or not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got {getattr(logits, 'dtype', type(logits))}")
    if logits.dim() < 1 or logits.size(-1) < 1:
        raise ValueError(f"logits must have shape [..., K] with K >= 1, got {tuple(logits.shape)}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if tuple(target.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match logits shape "
            f"{tuple(logits.shape)} (expected target shape {tuple(logits.shape[:-1])})"
        )
    k = logits.size(-1)
    flat_logits = logits.reshape(-1, k)
    flat_target = target.reshape(-1).long()
    mask = flat_target != ignore_index if ignore_index is not None else torch.ones_like(flat_target, dtype=torch.bool)
    bad = mask & ((flat_target < 0) | (flat_target >= k))
    if bool(bad.any()):
        value = int(flat_target[bad][0])
        raise ValueError(
            f"target value {value} is outside [0, {k}) and is not ignore_index={ignore_index!r}"
        )
    return flat_logits, torch.where(mask, flat_target, 0), mask


def _parts(
    logits: Tensor,
    target: Tensor,
    ignore_index: int | None,
    coef: float,
    penalty_kind: Literal["target", "max"],
    keep_per_position: bool,
) -> LossParts:
    flat_logits, flat_target, mask = _flatten(logits, target, ignore_index)
    stats = logit_stats(flat_logits, flat_target)
    zero = torch.zeros((), device=flat_logits.device)
    nll = torch.where(mask, stats.lse - stats.z_target, zero)
    peak = stats.z_target if penalty_kind == "target" else stats.z_max
    penalty = torch.where(mask, peak - stats.z_mean, zero)
    per_position = nll + coef * penalty
    return LossParts(
        loss=per_position.sum(),
        nll=nll.sum(),
        penalty=penalty.sum(),
        ntokens=mask.sum(),
        ncorrect=(mask & (stats.argmax == flat_target)).sum(),
        per_position=per_position.view(target.shape) if keep_per_position else None,
    )


def smoothing_coefficient(alpha: float, num_classes: int, convention: Convention) -> float:
    """Coefficient ``c`` of the penalty ``z_gt - mean z`` in ``loss = nll + c * penalty``.

    uniform: ``c = alpha``; fairseq (target ``1-alpha``, others ``alpha/(K-1)``):
    ``c = alpha * K / (K-1)`` (0 when K == 1).
    """
    alpha = check_alpha(alpha)
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
    if convention == "uniform":
        return alpha
    return alpha * num_classes / (num_classes - 1) if num_classes > 1 else 0.0


def label_smoothing_parts(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    *,
    ignore_index: int | None = None,
    convention: Convention = "uniform",
    keep_per_position: bool = False,
) -> LossParts:
    """Label-smoothed cross-entropy as :class:`LossParts`; ``penalty`` sums ``z_gt - mean z``."""
    coef = smoothing_coefficient(alpha, logits.size(-1), convention)
    return _parts(logits, target, ignore_index, coef, "target", keep_per_position)


def label_smoothing_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    *,
    ignore_index: int | None = None,
    convention: Convention = "uniform",
    reduction: Reduction = "mean",
) -> Tensor:
    """Cross-entropy against smoothed labels.

    uniform (paper Eq. 1, torch, HF): ``s = (1-alpha) onehot + alpha/K``, so
    ``loss = (1-alpha) nll + alpha * mean_k(-log p_k)``.
    fairseq: ``s = (1-alpha) onehot + alpha/(K-1) (1 - onehot)``, i.e.
    ``loss = (1-alpha-eps) nll + eps * sum_k(-log p_k)`` with ``eps = alpha/(K-1)``.
    """
    check_reduction(reduction)
    parts = label_smoothing_parts(
        logits, target, alpha, ignore_index=ignore_index, convention=convention,
        keep_per_position=reduction == "none",
    )
    return parts.reduce(reduction)


def maxsup_parts(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    *,
    ignore_index: int | None = None,
    keep_per_position: bool = False,
) -> LossParts:
    """MaxSup as :class:`LossParts`; ``penalty`` sums ``z_max - mean z``. Integer targets."""
    alpha = check_alpha(alpha)
    return _parts(logits, target, ignore_index, alpha, "max", keep_per_position)


def maxsup_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    *,
    ignore_index: int | None = None,
    reduction: Reduction = "mean",
) -> Tensor:
    """Max Suppression: ``CE(target, softmax z) + alpha * (max_k z_k - mean_k z_k)``.

    ``target`` is either class indices ``[...]`` or a soft distribution ``[..., K]`` (Mixup /
    CutMix, paper Eq. 5), for which the CE term is ``sum_k -t_k log p_k``.
    """
    check_reduction(reduction)
    if target.is_floating_point():
        if ignore_index is not None:
            raise ValueError("ignore_index applies to integer targets only, not soft targets")
        parts = soft_target_parts(logits, target, alpha, keep_per_position=reduction == "none")
    else:
        parts = maxsup_parts(
            logits, target, alpha, ignore_index=ignore_index, keep_per_position=reduction == "none"
        )
    return parts.reduce(reduction)


def soft_target_parts(
    logits: Tensor, target: Tensor, alpha: float, *, keep_per_position: bool = False
) -> LossParts:
    """``sum_k -t_k log p_k + alpha * (z_max - mean z)`` for soft targets ``t`` [..., K].

    ``nll`` is the soft cross-entropy; ``ncorrect`` counts rows whose arg-max is ``argmax t``.
    """
    alpha = check_alpha(alpha)
    if tuple(target.shape) != tuple(logits.shape):
        raise ValueError(
            f"soft target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}"
        )
    if not bool(torch.isfinite(target).all()) or bool((target < 0).any()):
        raise ValueError("soft targets must be finite and non-negative")
    k = logits.size(-1)
    flat_logits = logits.reshape(-1, k)
    flat_t = target.reshape(-1, k)
    hard = flat_t.argmax(dim=-1)
    stats = logit_stats(flat_logits, hard)
    # sum_k t_k (lse - z_k); the t . z term is linear, so autograd over it is cheap.
    flat_t = flat_t.to(stats.lse.dtype)
    nll = flat_t.sum(-1) * stats.lse - (flat_t * flat_logits.to(stats.lse.dtype)).sum(-1)
    penalty = stats.z_max - stats.z_mean
    per_position = nll + alpha * penalty
    return LossParts(
        loss=per_position.sum(),
        nll=nll.sum(),
        penalty=penalty.sum(),
        ntokens=torch.tensor(flat_logits.size(0), device=logits.device),
        ncorrect=(stats.argmax == hard).sum(),
        per_position=per_position.view(target.shape[:-1]) if keep_per_position else None,
    )

