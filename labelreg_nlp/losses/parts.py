"""The result type every loss of the package returns, and the input checks they share.

Every method computes, per position, ``loss = nll + c * penalty`` (or, for Online Label
Smoothing, ``hard_weight * nll + soft_weight * penalty``) and returns the sums as
:class:`LossParts`, so each adapter can normalize and log without recomputing anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from .checks import Reduction, check_reduction, check_tensor
from .logit_stats import logit_stats

#: target value of positions left out of every term, by default (torch's and Hugging Face's -100)
IGNORE_INDEX = -100


@dataclass
class LossParts:
    """Summed terms of one batch, so adapters can log without recomputing.

    ``nll`` is the unsmoothed cross-entropy and ``penalty`` the method's regularizer before its
    weight: LS and MaxSup give ``loss = nll + coef * penalty``, OLS
    ``loss = hard_weight * nll + soft_weight * penalty``. ``per_position`` is the loss per
    position (shape of the targets, zeros where ignored) and ``per_position_nll`` its
    unsmoothed cross-entropy, ``per_position_penalty`` its regularizer before the weight, all
    kept only when asked for.

    Example:
        >>> import torch
        >>> from labelreg_nlp import maxsup_parts
        >>> logits = torch.tensor([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
        >>> parts = maxsup_parts(logits, torch.tensor([0, -100]), 0.1, ignore_index=-100)
        >>> int(parts.ntokens), int(parts.ncorrect)
        (1, 1)
        >>> round(float(parts.reduce("mean")), 3)  # nll 0.2395 + 0.1 * (2 - 2/3)
        0.373
    """

    loss: Tensor  # scalar float32, summed over non-ignored positions
    nll: Tensor  # scalar float32, summed unsmoothed cross-entropy
    penalty: Tensor  # scalar float32, summed regularizer before its weight
    ntokens: Tensor  # scalar int64, non-ignored positions
    ncorrect: Tensor  # scalar int64, non-ignored positions whose arg-max is the target
    per_position: Tensor | None = None
    per_position_nll: Tensor | None = None
    per_position_penalty: Tensor | None = None

    @classmethod
    def of_positions(cls, per_position: Tensor, nll: Tensor, penalty: Tensor, *, ntokens: Tensor, ncorrect: Tensor,
                     shape: torch.Size, keep_per_position: bool) -> LossParts:
        """The sums of per-position terms (flat ``[N]``, zero where ignored), and with
        ``keep_per_position`` the terms themselves viewed as ``shape`` (the targets' shape).

        Example:
            >>> import torch
            >>> x = torch.tensor([1.0, 0.0, 2.0])
            >>> parts = LossParts.of_positions(x, x, x * 0, ntokens=torch.tensor(2), ncorrect=torch.tensor(1),
            ...                                shape=torch.Size([1, 3]), keep_per_position=True)
            >>> float(parts.loss), parts.per_position.shape
            (3.0, torch.Size([1, 3]))
        """
        kept = (lambda x: x.view(shape)) if keep_per_position else (lambda x: None)
        return cls(loss=per_position.sum(), nll=nll.sum(), penalty=penalty.sum(), ntokens=ntokens, ncorrect=ncorrect,
                   per_position=kept(per_position), per_position_nll=kept(nll), per_position_penalty=kept(penalty))

    def reduce(self, reduction: Reduction) -> Tensor:
        """The loss under ``reduction``.

        Args:
            reduction: ``"sum"``, ``"mean"`` (over non-ignored positions; 0 when there are
                none) or ``"none"`` (per position; needs ``keep_per_position=True``).

        Returns:
            A scalar, or a tensor of the targets' shape for ``"none"``.
        """
        check_reduction(reduction)
        if reduction == "sum":
            return self.loss
        if reduction == "mean":
            return self.loss / self.ntokens.clamp(min=1)
        if self.per_position is None:
            raise ValueError("per-position losses were not kept; compute with keep_per_position=True")
        return self.per_position


def flatten_batch(logits: Tensor, target: Tensor, ignore_index: int | None,
                  validate: bool = True) -> tuple[Tensor, Tensor, Tensor]:
    """Validate, then return logits ``[N, K]``, safe targets ``[N]`` (ignored -> 0) and the mask ``[N]``.

    Raises ``TypeError``/``ValueError`` naming the bad value: non-float logits, non-integer
    targets, mismatched shapes, a target outside ``[0, K)`` that is not ``ignore_index``.
    ``validate=False`` skips the last check, the only one that reads the targets' values (one
    device-to-host sync per call); a target outside ``[0, K)`` then fails inside torch (an index
    error on CPU, a device-side assert on CUDA) instead of with a message naming it.
    """
    check_tensor(logits, "logits")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if logits.dim() < 1 or logits.size(-1) < 1:
        raise ValueError(f"logits must have shape [..., K] with K >= 1, got {tuple(logits.shape)}")
    k = logits.size(-1)
    flat_target, mask = flatten_target(target, logits, ignore_index, validate, "logits")
    return logits.reshape(-1, k), flat_target, mask


def flatten_target(target: Tensor, inputs: Tensor, ignore_index: int | None, validate: bool = True,
                   name: str = "logits", k: int | None = None) -> tuple[Tensor, Tensor]:
    """Safe targets ``[N]`` (ignored -> 0) and the mask ``[N]`` of integer ``target``, which must
    have the shape of ``inputs [..., D]`` without its last dimension (``name`` names ``inputs`` in
    the error), with classes in ``[0, k)`` (``k`` defaults to D); errors as :func:`flatten_batch`."""
    check_tensor(target, "target")
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, int)):
        raise TypeError(f"ignore_index must be an int or None, got {type(ignore_index).__name__} {ignore_index!r}")
    if target.is_floating_point() or target.dtype == torch.bool:
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if tuple(target.shape) != tuple(inputs.shape[:-1]):
        raise ValueError(
            f"target shape {tuple(target.shape)} does not match {name} shape "
            f"{tuple(inputs.shape)} (expected target shape {tuple(inputs.shape[:-1])})"
        )
    k = inputs.size(-1) if k is None else k
    flat_target = target.reshape(-1).long()
    mask = flat_target != ignore_index if ignore_index is not None else torch.ones_like(flat_target, dtype=torch.bool)
    if validate:
        bad = mask & ((flat_target < 0) | (flat_target >= k))
        if bool(bad.any()):
            value = int(flat_target[bad][0])
            raise ValueError(
                f"target value {value} is outside [0, {k}) and is not ignore_index={ignore_index!r}"
            )
    return torch.where(mask, flat_target, 0), mask


def gap_parts(
    logits: Tensor,
    target: Tensor,
    ignore_index: int | None,
    coef: float,
    peak: Literal["target", "max"],
    keep_per_position: bool,
    validate: bool = True,
) -> LossParts:
    """``nll + coef * (z_peak - mean_k z_k)`` per position, ``z_peak`` the target logit (label
    smoothing) or the largest one (MaxSup); the form both take in the MaxSup paper (Lemma 3.2,
    Theorem 3.3). The penalty's sum is ``LossParts.penalty``. ``validate``: see :func:`flatten_batch`."""
    flat_logits, flat_target, mask = flatten_batch(logits, target, ignore_index, validate)
    stats = logit_stats(flat_logits, flat_target)
    zero = torch.zeros((), device=flat_logits.device)
    nll = torch.where(mask, stats.lse - stats.z_target, zero)
    z_peak = stats.z_target if peak == "target" else stats.z_max
    penalty = torch.where(mask, z_peak - stats.z_mean, zero)
    # coef 0 (no smoothing): exactly the cross-entropy, also when a masked (-inf) class makes the penalty inf
    per_position = nll + coef * penalty if coef else nll
    per_position = _masked_target_is_inf(per_position, stats.z_target, stats.lse, mask)
    return LossParts.of_positions(per_position, nll, penalty, ntokens=mask.sum(),
                                  ncorrect=(mask & (stats.argmax == flat_target)).sum(), shape=target.shape,
                                  keep_per_position=keep_per_position)


def check_soft_target(logits: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Validate soft targets ``[..., K]`` against ``logits`` and return both flattened to ``[N, K]``.

    Raises ``ValueError`` naming the problem: a shape other than the logits', a negative, NaN or
    infinite weight.
    """
    check_tensor(logits, "logits")
    check_tensor(target, "target")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor, got dtype {logits.dtype}")
    if tuple(target.shape) != tuple(logits.shape):
        raise ValueError(
            f"soft target shape {tuple(target.shape)} does not match logits shape {tuple(logits.shape)}"
        )
    if not bool(torch.isfinite(target).all()) or bool((target < 0).any()):
        bad = target[~(torch.isfinite(target) & (target >= 0))][0]
        raise ValueError(f"soft targets must be finite and non-negative, got {float(bad)!r}")
    k = logits.size(-1)
    return logits.reshape(-1, k), target.reshape(-1, k)


def _masked_target_is_inf(per_position: Tensor, z_target: Tensor, lse: Tensor, mask: Tensor | None = None) -> Tensor:
    """+inf where the target class is masked (its logit -inf, the row's other logits finite): the
    target term ``-log p_y`` is +inf and every other term is >= 0, as torch's ``cross_entropy``
    (with or without ``label_smoothing``) gives; ``z_y - mean z`` alone would make it ``-inf + inf = NaN``."""
    hit = torch.isneginf(z_target) & torch.isfinite(lse)
    if mask is not None:
        hit &= mask
    return torch.where(hit, torch.full((), math.inf, dtype=per_position.dtype, device=per_position.device), per_position)


def weighted_logits(weight: Tensor, logits: Tensor) -> Tensor:
    """``weight * logits`` with 0 wherever the weight is 0: a masked class (logit -inf) that a
    soft target leaves out costs nothing (``0 log 0 = 0``), instead of NaN."""
    return torch.where(weight == 0, torch.zeros((), dtype=logits.dtype, device=logits.device), weight * logits)


def soft_gap_parts(
    logits: Tensor,
    target: Tensor,
    coef: float,
    peak: Literal["target", "max"],
    keep_per_position: bool,
) -> LossParts:
    """The soft-target form of :func:`gap_parts`: ``CE(t, p) + coef * (z_peak - mean_k z_k)`` per
    row, ``t`` a soft target ``[..., K]`` (Mixup / CutMix rows), ``CE(t, p) = sum_k -t_k log p_k``,
    ``z_peak = sum_k t_k z_k`` (label smoothing: CE against ``(1 - c) t + c / K`` when
    ``sum t = 1``) or ``max_k z_k`` (MaxSup, its paper's Eq. 5). One-hot targets give
    :func:`gap_parts` exactly. ``ncorrect`` counts rows whose arg-max is ``argmax t``."""
    flat_logits, flat_t = check_soft_target(logits, target)
    hard = flat_t.argmax(dim=-1)
    stats = logit_stats(flat_logits, hard)
    flat_t = flat_t.to(stats.lse.dtype)
    # sum_k t_k (lse - z_k); the t . z term is linear, so autograd over it is cheap.
    z_t = weighted_logits(flat_t, flat_logits.to(stats.lse.dtype)).sum(-1)
    nll = flat_t.sum(-1) * stats.lse - z_t
    penalty = (z_t if peak == "target" else stats.z_max) - stats.z_mean
    per_position = nll + coef * penalty if coef else nll
    per_position = _masked_target_is_inf(per_position, z_t, stats.lse)
    return LossParts.of_positions(per_position, nll, penalty, ntokens=torch.tensor(flat_logits.size(0), device=logits.device),
                                  ncorrect=(stats.argmax == hard).sum(), shape=target.shape[:-1],
                                  keep_per_position=keep_per_position)
