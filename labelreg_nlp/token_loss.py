"""One loss object for every method, for adapters that pick the method by name (HF, scripts).

``TokenLoss(method, alpha, ...)`` computes :class:`~labelreg_nlp.functional.LossParts` over
logits ``[..., K]`` and targets ``[...]`` with ``ignore_index`` positions left out:

* ``none``: plain cross-entropy;
* ``ls``: label smoothing (``convention`` uniform as in torch/HF, or fairseq's);
* ``maxsup``: Max Suppression, ``shared/papers/000_8081c041bc3a65ca.txt``;
* ``ols``: Online Label Smoothing, ``shared/papers/004_b593a4f11bcafd55.txt`` (stateful).

Alpha follows a schedule of a 0-based progress counter (epoch or update) that the adapter sets
with :meth:`TokenLoss.set_progress`; OLS periods end with :meth:`TokenLoss.end_period`.
The formulas live in :mod:`labelreg_nlp.functional` and :mod:`labelreg_nlp.online_label_smoothing`.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from .functional import (
    CONVENTIONS,
    Convention,
    LossParts,
    check_alpha,
    label_smoothing_parts,
    maxsup_parts,
)
from .online_label_smoothing import INITS, Init, OnlineLabelSmoothing
from .schedules import make_schedule

Method = Literal["none", "ls", "maxsup", "ols"]
METHODS = ("none", "ls", "maxsup", "ols")


class TokenLoss(nn.Module):
    """Label-regularized cross-entropy chosen by name.

    Args:
        method: ``none``, ``ls``, ``maxsup`` or ``ols``.
        alpha: smoothing (``ls``) or suppression (``maxsup``) weight in [0, 1]; unused by
            ``none`` and ``ols``.
        alpha_end: with ``schedule_horizon``, alpha goes linearly from ``alpha`` to
            ``alpha_end`` over that many progress steps (MaxSup Appendix E uses 0.1 -> 0.2).
        schedule_horizon: number of progress steps (epochs or updates) of the schedule; may be
            left ``None`` and set on the attribute before the first loss (the HF trainer does).
        num_classes: K; required by ``ols``, checked against the logits by every method.
        convention: ``uniform`` (torch, HF) or ``fairseq`` label smoothing.
        ignore_index: target value of positions that are left out (HF: -100).
        ols_*: :class:`~labelreg_nlp.online_label_smoothing.OnlineLabelSmoothing` options.
    """

    def __init__(
        self,
        method: Method = "ls",
        alpha: float = 0.1,
        *,
        alpha_end: float | None = None,
        schedule_horizon: int | None = None,
        num_classes: int | None = None,
        convention: Convention = "uniform",
        ignore_index: int | None = -100,
        ols_hard_weight: float = 0.5,
        ols_soft_weight: float = 0.5,
        ols_init: Init = "uniform",
        ols_init_alpha: float = 0.1,
        ols_topk: int | None = None,
        ols_dense: bool = False,
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        if ols_init not in INITS:
            raise ValueError(f"ols_init must be one of {INITS}, got {ols_init!r}")
        if num_classes is not None and int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        self.method = method
        self.convention = convention
        self.ignore_index = ignore_index
        self.num_classes = None if num_classes is None else int(num_classes)
        self.alpha_start = check_alpha(alpha)
        self.alpha_end = None if alpha_end is None else check_alpha(alpha_end, "alpha_end")
        self.schedule_horizon = schedule_horizon  # may be set later, e.g. from the trainer's epochs
        if schedule_horizon is not None:
            make_schedule(alpha, alpha_end, schedule_horizon)  # validates the horizon now
        self.progress = 0
        self.ols: OnlineLabelSmoothing | None = None
        if method == "ols":
            if self.num_classes is None:
                raise ValueError("method 'ols' needs num_classes (the size of the label set or vocabulary)")
            self.ols = OnlineLabelSmoothing(
                self.num_classes, hard_weight=ols_hard_weight, soft_weight=ols_soft_weight,
                init=ols_init, init_alpha=ols_init_alpha, topk=ols_topk, dense=ols_dense,
            )

    @property
    def alpha(self) -> float:
        """The weight at the current progress step (unused by ``none`` and ``ols``)."""
        return make_schedule(self.alpha_start, self.alpha_end, self.schedule_horizon)(self.progress)

    def set_progress(self, step: int) -> None:
        """Set the 0-based epoch or update that the alpha schedule reads."""
        self.progress = int(step)

    def end_period(self) -> None:
        """End an OLS period (all-reduced under torch.distributed); no-op for other methods."""
        if self.ols is not None:
            self.ols.step_period()

    def parts(self, logits: Tensor, target: Tensor, keep_per_position: bool = False) -> LossParts:
        """Summed loss terms over the positions whose target is not ``ignore_index``.

        OLS accumulates its soft labels only when this module is in training mode and autograd
        is on, so evaluation (no_grad) never changes the state.
        """
        if self.num_classes is not None and logits.size(-1) != self.num_classes:
            raise ValueError(f"logits have {logits.size(-1)} classes, the loss was set up for num_classes={self.num_classes}")
        if self.ols is not None:
            self.ols.train(self.training and torch.is_grad_enabled())
            return self.ols.parts(logits, target, self.ignore_index, keep_per_position)
        if self.method == "maxsup":
            return maxsup_parts(logits, target, self.alpha, ignore_index=self.ignore_index,
                                keep_per_position=keep_per_position)
        alpha = self.alpha if self.method == "ls" else 0.0
        return label_smoothing_parts(logits, target, alpha, ignore_index=self.ignore_index,
                                     convention=self.convention, keep_per_position=keep_per_position)

    def forward(self, logits: Tensor, target: Tensor, num_items: Tensor | int | None = None) -> Tensor:
        """The summed loss divided by ``num_items`` when given (HF's ``num_items_in_batch``:
        the non-ignored targets of the whole accumulated batch), else by this batch's
        non-ignored targets. A batch with none gives 0."""
        parts = self.parts(logits, target)
        if num_items is None:
            return parts.reduce("mean")
        if torch.is_tensor(num_items):
            return parts.loss / num_items.to(parts.loss.device).clamp(min=1)
        return parts.loss / max(int(num_items), 1)

    def extra_repr(self) -> str:
        if self.method in ("ls", "maxsup"):
            return f"method={self.method!r}, alpha={self.alpha}"
        return f"method={self.method!r}"
