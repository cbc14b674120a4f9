"""Image-classification adapters: every registry method as a loss over ``[N, K]`` logits.

``criterion(logits, target)`` takes class indices ``[N]`` or soft targets ``[N, K]`` (what timm's
``Mixup``/CutMix, or the image script's own Mixup/CutMix, produce) and returns the
mean over rows, as timm's losses do. Torch only; the math is the core's
(:meth:`~labelreg_nlp.losses.base.MethodLoss.parts` and
:meth:`~labelreg_nlp.losses.base.MethodLoss.soft_parts`):

* ``none``: ``CE(t, p)``; with soft targets it equals timm's ``SoftTargetCrossEntropy``;
* ``ls``: CE against ``(1 - a) t + a / K``; with class indices it equals timm's
  ``LabelSmoothingCrossEntropy(smoothing=a)``;
* ``maxsup``: ``CE(t, p) + a (z_max - mean z)`` (MaxSup paper, Eq. 5);
* ``ols``: ``w_hard CE(t, p) + w_soft CE(t S, p)``; a row whose arg-max is ``argmax t`` is
  accumulated into ``S[argmax t]``;
* ``lspp``, ``lls``: the per-class loss averaged under ``t`` (one row per non-zero weight).

Stateful and learnable methods behave as elsewhere: call ``set_progress(epoch)`` for alpha
schedules and ``end_period()`` at each epoch's end (OLS); their state is in ``state_dict()``; the
learned tables of LS++ and LLS are parameters of the criterion, so give ``criterion.parameters()``
to the optimizer beside the model's.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..losses.checks import check_inputs
from ..losses.parts import LossParts
from ..losses.token_loss import TokenLoss


class ClassificationLoss(TokenLoss):
    """A registry method as an image-classification loss, hard or soft targets.

    Args:
        method: ``none``, ``ls``, ``maxsup``, ``ols``, ``lspp`` or ``lls``.
        alpha: the method's weight (see :class:`~labelreg_nlp.losses.token_loss.TokenLoss`).
        num_classes: K; required by ``ols``, ``lspp`` and ``lls``, checked by all.
        reduction: ``"mean"`` over rows (default) or ``"sum"``.
        **options: ``alpha_end``, ``schedule_horizon`` and the methods' flat options
            (``ols_hard_weight``, ``lspp_rank``, ...), as :class:`TokenLoss` takes them.

    Example:
        >>> import torch
        >>> criterion = ClassificationLoss("maxsup", 0.1)
        >>> logits = torch.randn(4, 10)
        >>> hard = torch.tensor([1, 2, 3, 4])
        >>> soft = torch.nn.functional.one_hot(hard, 10).float()
        >>> torch.allclose(criterion(logits, hard), criterion(logits, soft))
        True
        >>> mixed = 0.7 * soft + 0.3 * soft.flip(0)  # Mixup of the batch with its reverse
        >>> criterion(logits, mixed).shape
        torch.Size([])
    """

    def __init__(self, method: str = "ls", alpha: float = 0.1, *, num_classes: int | None = None,
                 reduction: str = "mean", **options: Any) -> None:
        super().__init__(method, alpha, num_classes=num_classes, ignore_index=None, **options)
        if reduction not in ("mean", "sum"):
            raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
        self.reduction = reduction

    def parts(self, logits: Tensor, target: Tensor, keep_per_position: bool = False) -> LossParts:
        """Summed terms over rows; soft targets when ``target`` is a float tensor shaped as the logits."""
        check_inputs(logits, target)
        if not (target.is_floating_point() and target.dim() == logits.dim()):
            return super().parts(logits, target, keep_per_position=keep_per_position)
        return self.prepared_method(logits).soft_parts(logits, target, keep_per_position=keep_per_position)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:  # type: ignore[override]
        """The loss over rows, averaged (``reduction="mean"``) or summed."""
        parts = self.parts(logits, target)
        return parts.loss if self.reduction == "sum" else parts.reduce("mean")

    def extra_repr(self) -> str:
        return f"method={self.method!r}, reduction={self.reduction!r}"


class LabelSmoothingCrossEntropy(ClassificationLoss):
    """Drop-in for timm's ``LabelSmoothingCrossEntropy(smoothing=0.1)``: class-index targets,
    ``(1 - s) CE + s mean_k(-log p_k)``, the mean over rows (soft targets are accepted too).

    Example:
        >>> import torch
        >>> logits, target = torch.randn(3, 5), torch.tensor([0, 4, 2])
        >>> ours = LabelSmoothingCrossEntropy(0.1)(logits, target)
        >>> torch.allclose(ours, torch.nn.functional.cross_entropy(logits, target, label_smoothing=0.1))
        True
    """

    def __init__(self, smoothing: float = 0.1) -> None:
        super().__init__("ls", smoothing)


class SoftTargetCrossEntropy(ClassificationLoss):
    """Drop-in for timm's ``SoftTargetCrossEntropy``: ``mean_n sum_k -t_nk log p_nk``.

    Example:
        >>> import torch
        >>> logits, t = torch.randn(3, 5), torch.softmax(torch.randn(3, 5), -1)
        >>> ours = SoftTargetCrossEntropy()(logits, t)
        >>> torch.allclose(ours, (-t * logits.log_softmax(-1)).sum(-1).mean())
        True
    """

    def __init__(self) -> None:
        super().__init__("none", 0.0)
