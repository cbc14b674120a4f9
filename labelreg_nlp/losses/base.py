"""The interface every method's loss module implements, so adapters can treat them alike.

A method module is an ``nn.Module``: its state (buffers, learnable parameters) goes through
``state_dict()`` and ``.to(device)`` as usual. Adapters call:

* :meth:`MethodLoss.parts` on each batch (``logits [..., K]``, ``target [...]``), or
  :meth:`MethodLoss.soft_parts` for soft targets ``[..., K]`` (Mixup / CutMix);
* :meth:`MethodLoss.set_progress` at each epoch or update (the alpha schedule reads it);
* :meth:`MethodLoss.end_period` at the end of each period (Online Label Smoothing's epoch);
* :meth:`MethodLoss.log_values` for what to add to a log line.

``validate_args`` (on by default, as in torchmetrics) checks that every target is a class in
``[0, K)``; that reads the targets' values, one device-to-host sync per call. Training loops
whose targets are known to be valid may switch it off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from .checks import Reduction, check_alpha, check_reduction
from .parts import IGNORE_INDEX, LossParts, check_soft_target
from .schedules import make_schedule


class MethodLoss(nn.Module):
    """Base class of the method modules. ``forward`` reduces :meth:`parts`."""

    #: check the targets' values (one device-to-host sync per call); set False to skip
    validate_args: bool = True
    #: built with K (a state or a table per class)
    NEEDS_NUM_CLASSES: bool = False
    #: has periods that adapters end with :meth:`end_period` (every epoch or every N updates)
    PERIODIC: bool = False

    def parts(self, logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX,
              keep_per_position: bool = False) -> LossParts:
        """Summed loss terms over the positions whose target is not ``ignore_index``.

        Args:
            logits: ``[..., K]``, any float dtype.
            target: ``[...]`` integer class indices.
            ignore_index: target value of positions to leave out of every term.
            keep_per_position: also return the loss per position (for ``reduction="none"``).

        Returns:
            :class:`~labelreg_nlp.losses.parts.LossParts`.
        """
        raise NotImplementedError

    def soft_parts(self, logits: Tensor, target: Tensor, *, keep_per_position: bool = False) -> LossParts:
        """Summed loss terms for soft targets ``t`` ``[..., K]`` (Mixup / CutMix rows): the loss of
        the class-index targets averaged under ``t``, per row ``sum_j t_j loss(z, j)``.

        This default expands each row over the classes where ``t_j > 0`` (two per row under
        Mixup or CutMix without smoothing) and calls :meth:`parts` on the expanded rows, so it is
        exact for any method; it costs one row per non-zero weight. Methods with a closed form
        (LS, MaxSup, OLS) override it. ``ncorrect`` counts rows whose arg-max is ``argmax t``.

        Args:
            logits: ``[..., K]``, any float dtype.
            target: ``[..., K]`` finite, non-negative weights.
            keep_per_position: also keep the loss per row.

        Returns:
            :class:`~labelreg_nlp.losses.parts.LossParts` over the rows.
        """
        flat_logits, flat_t = check_soft_target(logits, target)
        rows, cls = flat_t.nonzero(as_tuple=True)
        weight = flat_t[rows, cls].to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
        expanded = self.parts(flat_logits.index_select(0, rows), cls, ignore_index=None, keep_per_position=True)
        n = flat_logits.size(0)
        per_row = [torch.zeros(n, dtype=weight.dtype, device=weight.device).index_add(0, rows, weight * v)
                   for v in (expanded.per_position, expanded.per_position_nll, expanded.per_position_penalty)]
        shape = target.shape[:-1]
        with torch.no_grad():
            correct = flat_logits.argmax(dim=-1) == flat_t.argmax(dim=-1)
        return LossParts.of_positions(*per_row, ntokens=torch.tensor(n, device=logits.device), ncorrect=correct.sum(),
                                      shape=shape, keep_per_position=keep_per_position)

    def forward(self, logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX,
                reduction: Reduction = "mean") -> Tensor:
        """The loss reduced by ``reduction`` (``"mean"`` over non-ignored positions, ``"sum"``,
        ``"none"``)."""
        check_reduction(reduction)
        return self.parts(logits, target, ignore_index=ignore_index,
                          keep_per_position=reduction == "none").reduce(reduction)

    @contextmanager
    def batch_in_chunks(self) -> Iterator[None]:
        """Within this context one batch arrives as several :meth:`parts` calls on row chunks (the
        fused output layer): what a method remembers of "the last batch" for its logs must cover
        all of them. Nothing to do by default."""
        yield

    def set_progress(self, step: int) -> None:
        """Set the 0-based epoch or update that schedules read; no-op by default."""

    def end_period(self) -> None:
        """End a period of a stateful method (all-reduced under torch.distributed); no-op by default."""

    #: keys of :meth:`log_values` (adapters that sum logs over workers average them by batch size)
    LOG_VALUES: tuple[str, ...] = ()
    #: keys of :meth:`target_log_sums` (averaged over target positions)
    TARGET_LOG_SUMS: tuple[str, ...] = ()

    def log_values(self) -> dict[str, float]:
        """Scalars worth logging next to the loss, keyed as in :attr:`LOG_VALUES` (none by default)."""
        return {}

    def target_log_sums(self, target: Tensor) -> dict[str, Tensor]:
        """Sums over the non-ignored ``target`` classes ``[N]`` of per-position quantities worth
        logging, keyed as in :attr:`TARGET_LOG_SUMS` (none by default)."""
        return {}


class ScheduledAlphaLoss(MethodLoss):
    """A method whose weight ``alpha`` may follow a linear schedule.

    Args:
        alpha: the weight in [0, 1] (at progress 0 when scheduled).
        alpha_end: with a horizon, alpha goes linearly from ``alpha`` to ``alpha_end`` over
            ``schedule_horizon`` progress steps (MaxSup's 0.1 -> 0.2).
        schedule_horizon: number of progress steps (epochs or updates); may be left ``None``
            and set on the attribute before the first loss (the Hugging Face trainer does).
    """

    def __init__(self, alpha: float = 0.1, *, alpha_end: float | None = None,
                 schedule_horizon: int | None = None) -> None:
        super().__init__()
        self.alpha_start = check_alpha(alpha)
        self.alpha_end = None if alpha_end is None else check_alpha(alpha_end, "alpha_end")
        self.schedule_horizon = schedule_horizon
        if schedule_horizon is not None:
            make_schedule(alpha, alpha_end, schedule_horizon)  # validates the horizon now
        self.progress = 0

    @property
    def alpha(self) -> float:
        """The weight at the current progress step."""
        return make_schedule(self.alpha_start, self.alpha_end, self.schedule_horizon)(self.progress)

    def set_progress(self, step: int) -> None:
        self.progress = int(step)

    def extra_repr(self) -> str:
        if self.alpha_end is None or self.alpha_end == self.alpha_start:
            return f"alpha={self.alpha_start}"
        horizon = "unset" if self.schedule_horizon is None else self.schedule_horizon
        return f"alpha={self.alpha_start} -> {self.alpha_end} over {horizon} steps, progress={self.progress}"
