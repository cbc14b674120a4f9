"""Label smoothing (LS) over logits ``[..., K]`` and integer targets ``[...]``.

Per position ``loss = nll + c * (z_gt - mean_k z_k)`` (MaxSup paper, Lemma 3.2 and Theorem 3.3):

* ``uniform`` (the papers, ``torch.nn.functional.cross_entropy(label_smoothing=)``, Hugging Face,
  timm): target ``s = (1 - alpha) onehot + alpha / K``, ``c = alpha``;
* ``fairseq`` (``label_smoothed_cross_entropy`` of fairseq 0.12): ``1 - alpha`` on the target and
  ``alpha / (K - 1)`` on every other class, ``c = alpha * K / (K - 1)``.

Positions whose target equals ``ignore_index`` contribute nothing to any term. Logits may be any
float dtype; the math runs in float32, or float64 for float64 logits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import Tensor

from .base import ScheduledAlphaLoss
from .checks import Reduction, check_alpha, check_choice, check_inputs, check_reduction
from .options import Label, option, same_name
from .parts import IGNORE_INDEX, LossParts, gap_parts, soft_gap_parts

Convention = Literal["uniform", "fairseq"]
CONVENTIONS: tuple[str, ...] = ("uniform", "fairseq")


def smoothing_coefficient(alpha: float, num_classes: int, convention: Convention) -> float:
    """Coefficient ``c`` of the penalty ``z_gt - mean z`` in ``loss = nll + c * penalty``.

    Args:
        alpha: smoothing weight in [0, 1].
        num_classes: K, the full output size.
        convention: ``"uniform"`` (``c = alpha``) or ``"fairseq"`` (``c = alpha K / (K - 1)``,
            0 when K == 1).

    Returns:
        ``c`` as a float.

    Example:
        >>> smoothing_coefficient(0.1, 5, "uniform"), smoothing_coefficient(0.1, 5, "fairseq")
        (0.1, 0.125)
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
    ignore_index: int | None = IGNORE_INDEX,
    convention: Convention = "uniform",
    keep_per_position: bool = False,
    validate_args: bool = True,
) -> LossParts:
    """Label-smoothed cross-entropy as :class:`~labelreg_nlp.losses.parts.LossParts`.

    Args:
        logits: ``[..., K]``, any float dtype.
        target: ``[...]`` integer class indices.
        alpha: smoothing weight in [0, 1].
        ignore_index: target value of positions left out of every term (default -100, as torch's losses; None: none).
        convention: ``"uniform"`` or ``"fairseq"`` (see the module docstring).
        keep_per_position: also keep the loss per position.
        validate_args: check that every target is in ``[0, K)`` or ``ignore_index`` (one
            device-to-host sync); ``False`` skips it.

    Returns:
        Summed ``loss``, ``nll``, ``penalty`` (sum of ``z_gt - mean z``), ``ntokens``, ``ncorrect``.

    Example:
        >>> import torch
        >>> logits, target = torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([0])
        >>> parts = label_smoothing_parts(logits, target, 0.1)
        >>> round(float(parts.nll), 4), float(parts.penalty)
        (0.4076, 1.0)
    """
    check_inputs(logits, target)
    coef = smoothing_coefficient(alpha, logits.size(-1), convention)
    return gap_parts(logits, target, ignore_index, coef, "target", keep_per_position, validate_args)


def label_smoothing_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float,
    *,
    ignore_index: int | None = IGNORE_INDEX,
    convention: Convention = "uniform",
    reduction: Reduction = "mean",
    validate_args: bool = True,
) -> Tensor:
    """Cross-entropy against smoothed labels.

    uniform: ``loss = (1 - alpha) nll + alpha * mean_k(-log p_k)``;
    fairseq: ``loss = (1 - alpha - eps) nll + eps * sum_k(-log p_k)`` with ``eps = alpha / (K - 1)``.

    Args:
        logits: ``[..., K]``, any float dtype.
        target: ``[...]`` integer class indices.
        alpha: smoothing weight in [0, 1].
        ignore_index: target value of positions left out (default -100, as torch's losses; None: none); a batch of only those gives 0.
        convention: ``"uniform"`` or ``"fairseq"``.
        reduction: ``"mean"`` over non-ignored positions, ``"sum"`` or ``"none"``.
        validate_args: check the targets' values (one device-to-host sync); ``False`` skips it.

    Returns:
        The reduced loss (float32; float64 for float64 logits).

    Example:
        >>> import torch
        >>> logits = torch.randn(4, 7, 10)
        >>> target = torch.randint(0, 10, (4, 7))
        >>> ours = label_smoothing_loss(logits, target, 0.1)
        >>> torch_ls = torch.nn.functional.cross_entropy(logits.view(-1, 10), target.view(-1), label_smoothing=0.1)
        >>> torch.allclose(ours, torch_ls)
        True
    """
    check_reduction(reduction)
    parts = label_smoothing_parts(
        logits, target, alpha, ignore_index=ignore_index, convention=convention,
        keep_per_position=reduction == "none", validate_args=validate_args,
    )
    return parts.reduce(reduction)


class LabelSmoothingLoss(ScheduledAlphaLoss):
    """Label smoothing as a module (the ``ls`` method; ``none`` is ``alpha=0``).

    Args:
        alpha: smoothing weight in [0, 1].
        convention: ``"uniform"`` or ``"fairseq"``.
        alpha_end, schedule_horizon: optional linear schedule of alpha (see
            :class:`~labelreg_nlp.losses.base.ScheduledAlphaLoss`).

    Example:
        >>> import torch
        >>> loss = LabelSmoothingLoss(0.1)
        >>> logits, target = torch.randn(3, 5), torch.tensor([0, 4, -100])
        >>> torch.allclose(loss(logits, target, ignore_index=-100),
        ...                label_smoothing_loss(logits, target, 0.1, ignore_index=-100))
        True
    """

    def __init__(self, alpha: float = 0.1, *, convention: Convention = "uniform",
                 alpha_end: float | None = None, schedule_horizon: int | None = None) -> None:
        super().__init__(alpha, alpha_end=alpha_end, schedule_horizon=schedule_horizon)
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        self.convention = convention

    def parts(self, logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX,
              keep_per_position: bool = False) -> LossParts:
        return label_smoothing_parts(logits, target, self.alpha, ignore_index=ignore_index,
                                     convention=self.convention, keep_per_position=keep_per_position,
                                     validate_args=self.validate_args)

    def soft_parts(self, logits: Tensor, target: Tensor, *, keep_per_position: bool = False) -> LossParts:
        """CE against ``(1 - c) t + c / K`` for soft targets ``t`` (``c`` the convention's
        coefficient): what timm's ``Mixup(label_smoothing=)`` then ``SoftTargetCrossEntropy`` give."""
        coef = smoothing_coefficient(self.alpha, logits.size(-1), self.convention)
        return soft_gap_parts(logits, target, coef, "target", keep_per_position)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, convention={self.convention!r}"


@dataclass(frozen=True)
class CrossEntropyOptions:
    """Options of plain cross-entropy (``none``): none; it is label smoothing with ``alpha=0``.

    Example:
        >>> CrossEntropyOptions().build()
        LabelSmoothingLoss(alpha=0.0, convention='uniform')
    """

    def validate(self, label: Label = same_name) -> None:
        """Nothing to check."""

    def build(self, num_classes: int | None = None, schedule_horizon: int | None = None) -> LabelSmoothingLoss:
        """The loss module (``num_classes`` and ``schedule_horizon`` are not used)."""
        return LabelSmoothingLoss(0.0)


@dataclass(frozen=True)
class LabelSmoothingOptions:
    """Options of label smoothing (``ls``).

    Example:
        >>> LabelSmoothingOptions(alpha=0.1, convention="fairseq").build()
        LabelSmoothingLoss(alpha=0.1, convention='fairseq')
    """

    alpha: float = option(0.1, "smoothing weight (with alpha_end: the schedule's start)", valid="[0, 1]")
    alpha_end: float | None = option(None, "if set, alpha goes linearly from alpha to this value over the "
                                           "schedule horizon", valid="[0, 1]")
    convention: Convention = option("uniform", "uniform: target 1-a+a/K, others a/K (torch, HF, the papers); "
                                               "fairseq: target 1-a, others a/(K-1) (fairseq's "
                                               "label_smoothed_cross_entropy)")

    def validate(self, label: Label = same_name) -> None:
        """``ValueError`` (or ``TypeError``) naming the first bad option, spelled by ``label``."""
        check_alpha(self.alpha, label("alpha"))
        if self.alpha_end is not None:
            check_alpha(self.alpha_end, label("alpha_end"))
        check_choice(self.convention, CONVENTIONS, label("convention"))

    def build(self, num_classes: int | None = None, schedule_horizon: int | None = None) -> LabelSmoothingLoss:
        """The loss module, its schedule over ``schedule_horizon`` steps (``num_classes`` is not used)."""
        return LabelSmoothingLoss(self.alpha, convention=self.convention, alpha_end=self.alpha_end,
                                  schedule_horizon=schedule_horizon)
