"""Max Suppression (MaxSup): ``CE(y, softmax z) + alpha * (max_k z_k - mean_k z_k)``.

From "MaxSup: Overcoming Representation Collapse in Label Smoothing" (Zhou et al., arXiv
2502.15798), Algorithm 1. No detach: the gradient reaches the arg-max logit (the first one on
ties) and, through the mean, every logit (Appendix C). With soft targets (Mixup / CutMix, Eq. 5)
the CE term is ``sum_k -t_k log p_k``. The authors grow alpha linearly over training,
0.1 -> 0.2 (Appendix E): give ``alpha_end`` and a horizon.

Ties: with several equal maxima the penalty's gradient goes to the first arg-max (``torch.max``);
the authors' ``topk(1)`` may pick another one of them. The loss value is the same.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .base import ScheduledAlphaLoss
from .checks import Reduction, check_alpha, check_inputs, check_reduction
from .options import Label, option, same_name
from .parts import IGNORE_INDEX, LossParts, gap_parts, soft_gap_parts


def maxsup_parts(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    keep_per_position: bool = False,
    validate_args: bool = True,
) -> LossParts:
    """MaxSup with integer targets as :class:`~labelreg_nlp.losses.parts.LossParts`.

    Args:
        logits: ``[..., K]``, any float dtype.
        target: ``[...]`` integer class indices.
        alpha: suppression weight in [0, 1].
        ignore_index: target value of positions left out of every term (default -100, as torch's losses; None: none).
        keep_per_position: also keep the loss per position.
        validate_args: check that every target is in ``[0, K)`` or ``ignore_index`` (one
            device-to-host sync); ``False`` skips it.

    Returns:
        Summed ``loss``, ``nll``, ``penalty`` (sum of ``z_max - mean z``), ``ntokens``, ``ncorrect``.

    Example:
        >>> import torch
        >>> parts = maxsup_parts(torch.tensor([[0.0, 3.0, 0.0]]), torch.tensor([0]), 0.1)
        >>> float(parts.penalty)  # z_max - mean z = 3 - 1
        2.0
    """
    alpha = check_alpha(alpha)
    return gap_parts(logits, target, ignore_index, alpha, "max", keep_per_position, validate_args)


def soft_target_parts(
    logits: Tensor, target: Tensor, alpha: float, *, keep_per_position: bool = False
) -> LossParts:
    """``sum_k -t_k log p_k + alpha * (z_max - mean z)`` for soft targets ``t`` ``[..., K]``.

    Args:
        logits: ``[..., K]``, any float dtype.
        target: ``[..., K]`` finite, non-negative weights (rows of Mixup / CutMix targets).
        alpha: suppression weight in [0, 1].
        keep_per_position: also keep the loss per row.

    Returns:
        :class:`~labelreg_nlp.losses.parts.LossParts`; ``nll`` is the soft cross-entropy and
        ``ncorrect`` counts rows whose arg-max is ``argmax t``.

    Example:
        >>> import torch
        >>> t = torch.tensor([[0.7, 0.3, 0.0]])
        >>> parts = soft_target_parts(torch.zeros(1, 3), t, 0.1)
        >>> round(float(parts.nll), 4)  # log 3: uniform prediction
        1.0986
    """
    return soft_gap_parts(logits, target, check_alpha(alpha), "max", keep_per_position)


def maxsup_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    """Max Suppression: ``CE(target, softmax z) + alpha * (max_k z_k - mean_k z_k)``.

    Args:
        logits: ``[..., K]``, any float dtype.
        target: class indices ``[...]`` or a soft distribution ``[..., K]`` (Mixup / CutMix).
        alpha: suppression weight in [0, 1].
        ignore_index: with class indices, the target value of positions left out of every term
            (default -100, as torch's losses; None: none); soft targets have none.
        reduction: ``"mean"`` over non-ignored positions, ``"sum"`` or ``"none"``.
        validate_args: integer targets: check their values (one device-to-host sync); ``False`` skips it.

    Returns:
        The reduced loss.

    Example:
        >>> import torch
        >>> logits = torch.tensor([[0.0, 3.0, 0.0]])
        >>> ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
        >>> torch.allclose(maxsup_loss(logits, torch.tensor([0]), 0.1), ce + 0.1 * 2.0)
        True
    """
    check_reduction(reduction)
    return _any_target_parts(logits, target, alpha, ignore_index, reduction == "none",
                             validate_args).reduce(reduction)


def _any_target_parts(logits: Tensor, target: Tensor, alpha: float, ignore_index: int | None,
                      keep_per_position: bool, validate_args: bool = True) -> LossParts:
    """:func:`soft_target_parts` for float targets with the logits' rank (``[..., K]``),
    :func:`maxsup_parts` otherwise (which refuses float class indices)."""
    check_inputs(logits, target)
    if target.is_floating_point() and target.dim() == logits.dim():  # ignore_index: class indices only (as torch)
        return soft_target_parts(logits, target, alpha, keep_per_position=keep_per_position)
    return maxsup_parts(logits, target, alpha, ignore_index=ignore_index, keep_per_position=keep_per_position,
                        validate_args=validate_args)


class MaxSupLoss(ScheduledAlphaLoss):
    """MaxSup as a module (the ``maxsup`` method); integer or soft targets.

    Args:
        alpha: suppression weight in [0, 1].
        alpha_end, schedule_horizon: optional linear schedule of alpha (Appendix E: 0.1 -> 0.2).

    Example:
        >>> import torch
        >>> loss = MaxSupLoss(0.1, alpha_end=0.2, schedule_horizon=3)
        >>> loss.set_progress(2)
        >>> loss.alpha
        0.2
    """

    def parts(self, logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX,
              keep_per_position: bool = False) -> LossParts:
        return _any_target_parts(logits, target, self.alpha, ignore_index, keep_per_position, self.validate_args)

    def soft_parts(self, logits: Tensor, target: Tensor, *, keep_per_position: bool = False) -> LossParts:
        return soft_target_parts(logits, target, self.alpha, keep_per_position=keep_per_position)


@dataclass(frozen=True)
class MaxSupOptions:
    """Options of Max Suppression (``maxsup``).

    Example:
        >>> MaxSupOptions(alpha=0.1, alpha_end=0.2).build(schedule_horizon=10)
        MaxSupLoss(alpha=0.1 -> 0.2 over 10 steps, progress=0)
    """

    alpha: float = option(0.1, "suppression weight (with alpha_end: the schedule's start)", valid="[0, 1]")
    alpha_end: float | None = option(None, "if set, alpha goes linearly from alpha to this value over the "
                                           "schedule horizon (the authors: 0.1 -> 0.2)", valid="[0, 1]")

    def validate(self, label: Label = same_name) -> None:
        """``ValueError`` (or ``TypeError``) naming the first bad option, spelled by ``label``."""
        check_alpha(self.alpha, label("alpha"))
        if self.alpha_end is not None:
            check_alpha(self.alpha_end, label("alpha_end"))

    def build(self, num_classes: int | None = None, schedule_horizon: int | None = None) -> MaxSupLoss:
        """The loss module, its schedule over ``schedule_horizon`` steps (``num_classes`` is not used)."""
        return MaxSupLoss(self.alpha, alpha_end=self.alpha_end, schedule_horizon=schedule_horizon)
