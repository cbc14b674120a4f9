"""Online Label Smoothing's soft labels as a dense K x K matrix (exact).

Memory: two float32 K x K buffers (soft labels and accumulator), 8 K^2 bytes: 7.6 MiB at K = 1k,
763 MiB at 10k. The method itself is :class:`~labelreg_nlp.losses.online.OnlineLabelSmoothing`,
which holds this table (or the sparse one) as ``ols.table``.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .logit_stats import LogitStats, row_slices
from .parts import weighted_logits


class DenseSoftLabels(nn.Module):
    """``S`` as a K x K matrix (``soft``), accumulated into ``acc``.

    Args:
        num_classes: K.

    Example:
        >>> table = DenseSoftLabels(4)
        >>> table.soft.shape, table.topk
        (torch.Size([4, 4]), 4)
    """

    dense = True

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        k = self.num_classes = self.topk = int(num_classes)
        self.register_buffer("soft", torch.empty(k, k))
        self.register_buffer("acc", torch.zeros(k, k))

    def fill(self, on: float, off: float) -> None:
        self.soft.fill_(off)
        self.soft.diagonal().fill_(on)

    def soft_index(self, target: Tensor) -> None:
        return None

    def soft_ce(self, logits: Tensor, target: Tensor, stats: LogitStats) -> Tensor:
        dtype = stats.lse.dtype
        rows = self.soft.to(dtype)[target]  # [N, K]
        return rows.sum(-1) * stats.lse - weighted_logits(rows, logits.to(dtype)).sum(-1)

    def accumulate_rows(self, logits: Tensor, rows: Tensor, y: Tensor, lse: Tensor, stats: LogitStats) -> None:
        for sl in row_slices(rows.numel(), self.num_classes):
            self.acc.index_add_(0, y[sl], torch.exp(logits[rows[sl]].float() - lse[sl, None]))

    def finish_period(self, update: Tensor, keep: Tensor, count: Tensor, fallback: float) -> None:
        new = torch.where(update[:, None], self.acc / count.clamp(min=1)[:, None], torch.full_like(self.acc, fallback))
        self.soft.copy_(torch.where(keep[:, None], self.soft, new))
        self.acc.zero_()

    def row_max(self) -> Tensor:
        return self.soft.amax(dim=-1)

    def all_reduce(self) -> None:
        dist.all_reduce(self.acc)

    def dense_labels(self) -> Tensor:
        return self.soft.clone()

    def target_mass(self, target: Tensor) -> Tensor:
        return self.soft[target, target]

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}"
