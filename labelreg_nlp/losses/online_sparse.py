"""Online Label Smoothing's soft labels as sparse top-k rows, for vocabularies (held by
:class:`~labelreg_nlp.losses.online.OnlineLabelSmoothing` as ``ols.table``).

Each row of ``S`` keeps its top-k classes (``soft_idx``, ``soft_val``) and spreads the rest of
its mass (``soft_tail``) uniformly over the other K - k classes. The accumulator keeps 2k slots
per row (``acc_idx``, ``acc_val``); each correct position contributes its top-k probabilities and
the remainder goes to the row's tail mass (``acc_tail``), as do entries pushed out of a full row,
so rows still sum to their counts. With k = K nothing is dropped and it equals the dense form.

With ``S[y] = sum_j v_j e_{c_j} + u (1 - sum_j e_{c_j})`` (u = tail / (K - k)) the soft CE is
``m lse - sum_j (v_j - u) z_{c_j} - u K mean(z)`` with ``m = sum_k S[y]_k``, so the loss needs
only the logits at k indices per position, not a K-wide soft-label row.

Memory (every buffer): ``K (k + 2k) (4 + 4) + 12 K`` bytes with int32 indices, 1.5 MiB at K = 1k,
14.8 MiB at 10k, 47.2 MiB at 32k for k = 64.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .logit_stats import LogitStats
from .parts import weighted_logits


class SparseSoftLabels(nn.Module):
    """The top-k classes of each soft label plus a uniform tail.

    Args:
        num_classes: K.
        topk: k, classes kept per row (1 <= k <= K).

    Example:
        >>> table = SparseSoftLabels(1000, topk=16)
        >>> table.fill(1e-3, 1e-3)
        >>> table.soft_val.shape, table.acc_val.shape
        (torch.Size([1000, 16]), torch.Size([1000, 32]))
        >>> round(float(table.dense_labels().sum(-1).max()), 4)
        1.0
    """

    dense = False

    def __init__(self, num_classes: int, topk: int) -> None:
        super().__init__()
        k, kk = self.num_classes, self.topk = int(num_classes), int(topk)
        slots = min(k, 2 * kk)
        index_dtype = torch.int32 if k < 2**31 else torch.int64
        self.register_buffer("soft_idx", torch.empty(k, kk, dtype=index_dtype))
        self.register_buffer("soft_val", torch.empty(k, kk))
        self.register_buffer("soft_tail", torch.empty(k))  # mass spread over the K - k others
        self.register_buffer("acc_idx", torch.zeros(k, slots, dtype=index_dtype))
        self.register_buffer("acc_val", torch.zeros(k, slots))
        self.register_buffer("acc_tail", torch.zeros(k))

    def fill(self, on: float, off: float) -> None:
        idx, val, tail = self._uniform_rows(off)
        val[:, 0] = on  # column 0 is the row's own class
        self.soft_idx.copy_(idx)
        self.soft_val.copy_(val)
        self.soft_tail.copy_(tail)

    def _uniform_rows(self, value: float) -> tuple[Tensor, Tensor, Tensor]:
        """Rows with ``value`` on every class: idx = own class then the next k-1 classes,
        val = value, tail = value * (K - k). The layout of the init and of never-seen classes."""
        k, kk, device = self.num_classes, self.topk, self.soft_val.device
        idx = (torch.arange(k, device=device)[:, None] + torch.arange(kk, device=device)[None, :]) % k
        val = torch.full((k, kk), value, device=device)
        tail = torch.full((k,), value * (k - kk), device=device)
        return idx.to(self.soft_idx.dtype), val, tail

    def _tail_share(self, rows: Tensor) -> Tensor:
        """What each class outside a row's top-k gets: ``soft_tail / (K - k)``."""
        return self.soft_tail[rows] / max(1, self.num_classes - self.topk)

    def soft_index(self, target: Tensor) -> Tensor:
        return self.soft_idx[target].long()

    def soft_ce(self, logits: Tensor, target: Tensor, stats: LogitStats) -> Tensor:
        dtype = stats.lse.dtype
        k, kk = self.num_classes, self.topk
        val = self.soft_val[target].to(dtype)
        u = self._tail_share(target).to(dtype)
        mass = val.sum(-1) + u * (k - kk)
        z_top = stats.z_extra  # logits at soft_idx[target], gathered inside the fused function
        # products with a zero weight are 0, not NaN, at masked (-inf) classes
        ce = mass * stats.lse - weighted_logits(val - u[:, None], z_top).sum(-1) - weighted_logits(u * k, stats.z_mean)
        # Every term S_k (lse - z_k) is >= 0 when lse is finite, so a NaN there is the top-k/tail
        # split meeting a masked class twice (-inf + inf): a class with mass at a masked logit, +inf.
        # (Exact unless the masked class sits in the top-k with zero mass while the tail has some.)
        return torch.where(torch.isnan(ce) & torch.isfinite(stats.lse), math.inf, ce)

    def accumulate_rows(self, logits: Tensor, rows: Tensor, y: Tensor, lse: Tensor, stats: LogitStats) -> None:
        # the top-k logits are the top-k of the softmax: exponentiate only those entries
        val = torch.exp(stats.top_logit[rows].float() - lse[:, None])
        self.acc_tail.index_add_(0, y, (1.0 - val.sum(-1)).clamp(min=0))
        self._merge(y, stats.top_index[rows], val)

    def _merge(self, rows: Tensor, idx: Tensor, val: Tensor) -> None:
        """Add entries (rows[i], idx[i, j], val[i, j]) to the slot accumulator, keeping the
        largest ``slots`` per row and moving what falls out into the row's tail mass."""
        k, slots = self.num_classes, self.acc_val.size(1)
        key_dtype = torch.int32 if k * k < 2**31 else torch.int64  # int32 sorts twice as fast
        touched = torch.unique(rows)
        keys = torch.cat([
            (touched.to(key_dtype)[:, None] * k + self.acc_idx[touched].to(key_dtype)).reshape(-1),
            (rows.to(key_dtype)[:, None] * k + idx.to(key_dtype)).reshape(-1),
        ])
        vals = torch.cat([self.acc_val[touched].reshape(-1), val.reshape(-1).float()])
        uniq, inverse = torch.unique(keys, return_inverse=True)  # sorted: grouped by row
        summed = torch.zeros(uniq.numel(), device=vals.device).index_add_(0, inverse, vals)
        row_of, col_of = uniq // k, uniq % k
        per_row = torch.bincount(row_of, minlength=k)
        first_of_row = torch.cumsum(per_row, 0) - per_row  # entries are grouped by row
        rank = torch.arange(uniq.numel(), device=uniq.device) - first_of_row[row_of]
        over = per_row[row_of] > slots
        if bool(over.any()):
            # rows with more entries than slots: rank them by value, largest first, in one sort
            # by (row, -value); bit patterns of non-negative float32 order like their values
            sub = over.nonzero().squeeze(-1)
            descending = 0x7FFFFFFF - (summed[sub] + 0.0).view(torch.int32).long()  # + 0.0: no -0.0
            order = sub[torch.argsort((row_of[sub].long() << 31) | descending, stable=True)]
            r = row_of[order]
            rank[order] = torch.arange(order.numel(), device=r.device) - torch.searchsorted(r, r)
            dropped = rank >= slots
            self.acc_tail.index_add_(0, row_of[dropped], summed[dropped])
        keep = rank < slots
        self.acc_idx[touched] = 0
        self.acc_val[touched] = 0.0
        self.acc_idx[row_of[keep], rank[keep]] = col_of[keep].to(self.acc_idx.dtype)
        self.acc_val[row_of[keep], rank[keep]] = summed[keep]

    def finish_period(self, update: Tensor, keep: Tensor, count: Tensor, fallback: float) -> None:
        val, pos = self.acc_val.topk(self.topk, dim=-1)
        idx = self.acc_idx.gather(1, pos)
        tail = self.acc_tail + (self.acc_val.sum(-1) - val.sum(-1))
        denom = count.clamp(min=1)
        fb_idx, fb_val, fb_tail = self._uniform_rows(fallback)  # rows not updated
        new_idx = torch.where(update[:, None], idx, fb_idx)
        new_val = torch.where(update[:, None], val / denom[:, None], fb_val)
        new_tail = torch.where(update, tail / denom, fb_tail)
        self.soft_idx.copy_(torch.where(keep[:, None], self.soft_idx, new_idx))
        self.soft_val.copy_(torch.where(keep[:, None], self.soft_val, new_val))
        self.soft_tail.copy_(torch.where(keep, self.soft_tail, new_tail))
        self.acc_idx.zero_()
        self.acc_val.zero_()
        self.acc_tail.zero_()

    def row_max(self) -> Tensor:
        rows = torch.arange(self.num_classes, device=self.soft_val.device)
        return torch.maximum(self.soft_val.amax(dim=-1), self._tail_share(rows))

    def all_reduce(self) -> None:
        # Slot sets differ between ranks: gather every rank's slots and merge them in rank order,
        # so all ranks compute the same result.
        world = dist.get_world_size()
        gathered_idx = [torch.empty_like(self.acc_idx) for _ in range(world)]
        gathered_val = [torch.empty_like(self.acc_val) for _ in range(world)]
        dist.all_gather(gathered_idx, self.acc_idx)
        dist.all_gather(gathered_val, self.acc_val)
        dist.all_reduce(self.acc_tail)
        self.acc_idx.zero_()
        self.acc_val.zero_()
        rows = torch.arange(self.num_classes, device=self.acc_val.device)
        for idx, val in zip(gathered_idx, gathered_val, strict=True):
            self._merge(rows, idx.long(), val)

    def dense_labels(self) -> Tensor:
        k = self.num_classes
        out = self._tail_share(torch.arange(k, device=self.soft_tail.device))[:, None].expand(k, k).clone()
        out.scatter_(1, self.soft_idx.long(), self.soft_val)
        return out

    def target_mass(self, target: Tensor) -> Tensor:
        hit = self.soft_idx[target].long() == target[:, None]
        return torch.where(hit.any(-1), (self.soft_val[target] * hit).sum(-1), self._tail_share(target))

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, topk={self.topk}"
