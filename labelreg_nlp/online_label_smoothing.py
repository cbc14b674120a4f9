"""Online Label Smoothing (OLS), ``shared/papers/004_b593a4f11bcafd55.txt``, Algorithm 1.

Per class ``y`` a soft label ``S[y]`` (a distribution over the K classes) learned from the model's
own correct predictions during the previous period (an epoch, or N updates):

    loss_i   = w_hard * CE(onehot(y_i), p_i) + w_soft * CE(S[y_i], p_i)          (Eq. 4)
    S'[y]   += softmax(z_i)   for every position with argmax z_i == y_i            (Eq. 5)
    S[y]     = S'[y] / count[y] at the end of the period; uniform 1/K if count[y] == 0   (Eq. 6)

The paper writes ``alpha * hard + (1 - alpha) * soft`` with alpha = 0.5.

Two representations of ``S``:

* dense: a K x K float32 matrix (exact; 4 K^2 bytes, fine for images, 0.4 GiB at K = 10k);
* sparse (large vocabularies): each row keeps its top-k classes and spreads the rest of its mass
  uniformly over the other K - k classes. The accumulator keeps 2k slots per row; each correct
  position contributes its top-k probabilities and the remainder goes to the row's tail mass
  (as do entries pushed out of a full row), so rows still sum to their counts. With k = K
  nothing is dropped and it equals dense.

With ``S[y] = sum_j v_j e_{c_j} + u (1 - sum_j e_{c_j})`` (u = tail / (K - k)) the soft CE is
``m lse - sum_j (v_j - u) z_{c_j} - u K mean(z)`` with ``m = sum_k S[y]_k``, so the loss needs
only the logits at k indices per position, not a K-wide soft-label row.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn

from .functional import LossParts, Reduction, _flatten, check_reduction
from .logit_stats import _row_slices, logit_stats

Init = Literal["uniform", "ls", "zeros"]
INITS = ("uniform", "ls", "zeros")
DENSE_MAX_CLASSES = 2048  # auto mode: dense up to this many classes, sparse above
DEFAULT_TOPK = 64


def _check_weight(value: float, name: str) -> float:
    value = float(value)
    if not (value >= 0.0 and value != float("inf")):  # rejects negative, NaN and inf
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


class OnlineLabelSmoothing(nn.Module):
    """Stateful OLS loss. ``self.training`` decides whether a call accumulates.

    Args:
        num_classes: K.
        hard_weight, soft_weight: weights of CE(onehot) and CE(S[y]) (paper: 0.5 and 0.5).
        init: soft labels of the first period: ``"uniform"`` (paper), ``"ls"`` (uniform label
            smoothing with ``init_alpha``) or ``"zeros"`` (official code: no soft term at first).
        init_alpha: smoothing weight for ``init="ls"``.
        topk: sparse representation with k classes per row. ``None``: dense when
            ``num_classes <= 2048``, else sparse with k = 64.
        dense: force the dense representation.
    """

    def __init__(
        self,
        num_classes: int,
        *,
        hard_weight: float = 0.5,
        soft_weight: float = 0.5,
        init: Init = "uniform",
        init_alpha: float = 0.1,
        topk: int | None = None,
        dense: bool = False,
    ) -> None:
        super().__init__()
        if int(num_classes) < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        if not 0.0 <= float(init_alpha) <= 1.0:
            raise ValueError(f"init_alpha must be in [0, 1], got {init_alpha!r}")
        k_classes = int(num_classes)
        if topk is not None and not 1 <= int(topk) <= k_classes:
            raise ValueError(f"topk must be in [1, num_classes={k_classes}], got {topk!r}")
        if dense and topk is not None:
            raise ValueError("give either dense=True or topk, not both")
        self.num_classes = k_classes
        self.hard_weight = _check_weight(hard_weight, "hard_weight")
        self.soft_weight = _check_weight(soft_weight, "soft_weight")
        self.dense = bool(dense) or (topk is None and k_classes <= DENSE_MAX_CLASSES)
        self.topk = k_classes if self.dense else int(topk or min(DEFAULT_TOPK, k_classes))
        slots = min(k_classes, 2 * self.topk)
        k, kk = k_classes, self.topk
        # (num_classes, topk): checked on load so a state for another K or k is refused.
        self.register_buffer("shape_info", torch.tensor([k, 0 if self.dense else kk]))
        self.register_buffer("count", torch.zeros(k))  # correct positions per class, this period
        self.register_buffer("periods", torch.zeros((), dtype=torch.long))  # finished periods
        if self.dense:
            self.register_buffer("soft", torch.empty(k, k))
            self.register_buffer("acc", torch.zeros(k, k))
        else:
            index_dtype = torch.int32 if k < 2**31 else torch.int64
            self.register_buffer("soft_idx", torch.empty(k, kk, dtype=index_dtype))
            self.register_buffer("soft_val", torch.empty(k, kk))
            self.register_buffer("soft_tail", torch.empty(k))  # mass spread over the K - k others
            self.register_buffer("acc_idx", torch.zeros(k, slots, dtype=index_dtype))
            self.register_buffer("acc_val", torch.zeros(k, slots))
            self.register_buffer("acc_tail", torch.zeros(k))
        self._init_soft_labels(init, float(init_alpha))

    # ------------------------------------------------------------------ soft labels
    def _init_soft_labels(self, init: str, alpha: float) -> None:
        k = self.num_classes
        if init == "zeros":
            on, off = 0.0, 0.0
        elif init == "uniform":
            on, off = 1.0 / k, 1.0 / k
        else:
            on, off = 1.0 - alpha + alpha / k, alpha / k
        with torch.no_grad():
            if self.dense:
                self.soft.fill_(off)
                self.soft.diagonal().fill_(on)
            else:
                idx, val, tail = self._uniform_sparse_rows(off)
                val[:, 0] = on  # column 0 is the row's own class
                self.soft_idx.copy_(idx)
                self.soft_val.copy_(val)
                self.soft_tail.copy_(tail)

    def _uniform_sparse_rows(self, value: float) -> tuple[Tensor, Tensor, Tensor]:
        """Sparse rows with ``value`` on every class: idx = own class then the next k-1 classes,
        val = value, tail = value * (K - k). The layout of the init and of never-seen classes."""
        k, kk, device = self.num_classes, self.topk, self.soft_val.device
        idx = (torch.arange(k, device=device)[:, None] + torch.arange(kk, device=device)[None, :]) % k
        val = torch.full((k, kk), value, device=device)
        tail = torch.full((k,), value * (k - kk), device=device)
        return idx.to(self.soft_idx.dtype), val, tail

    def _tail_share(self, rows: Tensor) -> Tensor:
        """What each class outside a sparse row's top-k gets: ``soft_tail / (K - k)``."""
        return self.soft_tail[rows] / max(1, self.num_classes - self.topk)

    def soft_labels(self) -> Tensor:
        """The current soft labels as a dense K x K matrix (row y = S[y]); for inspection."""
        if self.dense:
            return self.soft.clone()
        k = self.num_classes
        out = self._tail_share(torch.arange(k, device=self.soft_tail.device))[:, None].expand(k, k).clone()
        out.scatter_(1, self.soft_idx.long(), self.soft_val)
        return out

    def target_mass(self, target: Tensor) -> Tensor:
        """``S[y][y]`` for each target in ``target`` [N] (valid classes only)."""
        if self.dense:
            return self.soft[target, target]
        hit = self.soft_idx[target].long() == target[:, None]
        return torch.where(hit.any(-1), (self.soft_val[target] * hit).sum(-1), self._tail_share(target))

    # ------------------------------------------------------------------ loss
    def parts(self, logits: Tensor, target: Tensor, ignore_index: int | None = None,
              keep_per_position: bool = False) -> LossParts:
        """:class:`LossParts` with ``nll`` = summed CE(onehot), ``penalty`` = summed CE(S[y]) and
        ``loss = hard_weight * nll + soft_weight * penalty``. Accumulates when ``self.training``."""
        flat_logits, flat_target, mask = _flatten(logits, target, ignore_index)
        if flat_logits.size(-1) != self.num_classes:
            raise ValueError(f"logits have {flat_logits.size(-1)} classes, this OLS state has {self.num_classes}")
        soft_index = None if self.dense else self.soft_idx[flat_target].long()
        accumulate = self.training and not self.dense
        stats = logit_stats(flat_logits, flat_target, soft_index, top=self.topk if accumulate else 0)
        zero = torch.zeros((), device=flat_logits.device)
        nll = torch.where(mask, stats.lse - stats.z_target, zero)
        soft_ce = torch.where(mask, self._soft_ce(flat_logits, flat_target, stats), zero)
        per_position = self.hard_weight * nll + self.soft_weight * soft_ce
        correct = mask & (stats.argmax == flat_target)
        if self.training:
            self.accumulate(flat_logits, flat_target, correct, stats)
        return LossParts(
            loss=per_position.sum(), nll=nll.sum(), penalty=soft_ce.sum(), ntokens=mask.sum(),
            ncorrect=correct.sum(),
            per_position=per_position.view(target.shape) if keep_per_position else None,
        )

    def forward(self, logits: Tensor, target: Tensor, ignore_index: int | None = None,
                reduction: Reduction = "mean") -> Tensor:
        check_reduction(reduction)
        return self.parts(logits, target, ignore_index, keep_per_position=reduction == "none").reduce(reduction)

    loss = forward

    def _soft_ce(self, logits: Tensor, target: Tensor, stats) -> Tensor:
        dtype = stats.lse.dtype
        if self.dense:
            rows = self.soft.to(dtype)[target]  # [N, K]
            return rows.sum(-1) * stats.lse - (rows * logits.to(dtype)).sum(-1)
        k, kk = self.num_classes, self.topk
        val = self.soft_val[target].to(dtype)
        u = self._tail_share(target).to(dtype)
        mass = val.sum(-1) + u * (k - kk)
        z_top = stats.z_extra  # logits at soft_idx[target], gathered inside the fused function
        return mass * stats.lse - ((val - u[:, None]) * z_top).sum(-1) - u * k * stats.z_mean

    # ------------------------------------------------------------------ accumulation
    @torch.no_grad()
    def accumulate(self, logits: Tensor, target: Tensor, correct: Tensor, stats) -> None:
        """Add softmax(logits) (T = 1) of the ``correct`` rows to their target's accumulator.

        ``stats`` is the :func:`logit_stats` of these logits (with ``top=self.topk`` when sparse).
        """
        rows = correct.nonzero().squeeze(-1)
        if rows.numel() == 0:
            return
        y = target[rows]
        self.count.index_add_(0, y, torch.ones(rows.numel(), device=self.count.device))
        lse = stats.lse[rows].float()
        if self.dense:
            for sl in _row_slices(rows.numel(), self.num_classes):
                self.acc.index_add_(0, y[sl], torch.exp(logits[rows[sl]].float() - lse[sl, None]))
            return
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

    # ------------------------------------------------------------------ periods
    @torch.no_grad()
    def step_period(self) -> None:
        """End the period: all-reduce the accumulators across processes (when torch.distributed
        is initialized), make them the new soft labels, and start a new period."""
        self._all_reduce()
        k, count = self.num_classes, self.count
        seen = count > 0
        if self.dense:
            uniform = torch.full_like(self.acc, 1.0 / k)
            self.soft.copy_(torch.where(seen[:, None], self.acc / count.clamp(min=1)[:, None], uniform))
            self.acc.zero_()
        else:
            kk = self.topk
            val, pos = self.acc_val.topk(kk, dim=-1)
            idx = self.acc_idx.gather(1, pos)
            tail = self.acc_tail + (self.acc_val.sum(-1) - val.sum(-1))
            denom = count.clamp(min=1)
            uni_idx, uni_val, uni_tail = self._uniform_sparse_rows(1.0 / k)  # rows never seen
            self.soft_idx.copy_(torch.where(seen[:, None], idx, uni_idx))
            self.soft_val.copy_(torch.where(seen[:, None], val / denom[:, None], uni_val))
            self.soft_tail.copy_(torch.where(seen, tail / denom, uni_tail))
            self.acc_idx.zero_()
            self.acc_val.zero_()
            self.acc_tail.zero_()
        count.zero_()
        self.periods += 1

    def _all_reduce(self) -> None:
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        dist.all_reduce(self.count)
        if self.dense:
            dist.all_reduce(self.acc)
            return
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

    # ------------------------------------------------------------------ state
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        key = prefix + "shape_info"
        if key in state_dict:
            saved = [int(v) for v in state_dict[key].tolist()]
            mine = [int(v) for v in self.shape_info.tolist()]
            if saved != mine:
                describe = lambda s: f"num_classes={s[0]}, " + ("dense" if s[1] == 0 else f"topk={s[1]}")  # noqa: E731
                raise ValueError(
                    f"OnlineLabelSmoothing state was saved for {describe(saved)}; this module has {describe(mine)}"
                )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)

    def extra_repr(self) -> str:
        kind = "dense" if self.dense else f"topk={self.topk}"
        return f"num_classes={self.num_classes}, {kind}, hard_weight={self.hard_weight}, soft_weight={self.soft_weight}"
