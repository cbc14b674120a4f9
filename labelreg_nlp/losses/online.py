"""Online Label Smoothing (OLS): soft labels learned from the model's own correct predictions.

From "Delving Deep into Label Smoothing" (Zhang et al., IEEE TIP 2021, arXiv 2011.12562),
Algorithm 1. Per class ``y`` a soft label ``S[y]`` (a distribution over the K classes) is
learned during the previous period (an epoch, or N updates):

    loss_i   = w_hard * CE(onehot(y_i), p_i) + w_soft * CE(S[y_i], p_i)          (Eq. 4)
    S'[y]   += softmax(z_i)   for every position with argmax z_i == y_i            (Eq. 5)
    S[y]     = S'[y] / count[y] at the end of the period; uniform 1/K if count[y] == 0   (Eq. 6)

The paper writes ``alpha * hard + (1 - alpha) * soft`` with alpha = 0.5.

This module holds the method once; ``S`` lives in a table it holds as ``ols.table``, one of two
with the same methods:

* :class:`~labelreg_nlp.losses.online_dense.DenseSoftLabels`: a K x K matrix (exact), up to 2048
  classes or with ``dense=True``;
* :class:`~labelreg_nlp.losses.online_sparse.SparseSoftLabels`: top-k classes per row plus a
  uniform tail (vocabulary scale), above 2048 classes or with ``topk``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor

from .base import MethodLoss
from .checks import check_alpha, check_choice, check_inputs, check_logit_classes, check_num_classes, check_weight
from .logit_stats import LogitStats, logit_stats
from .online_dense import DenseSoftLabels
from .online_sparse import SparseSoftLabels
from .options import Label, option, same_name
from .parts import IGNORE_INDEX, LossParts, check_soft_target, flatten_batch, weighted_logits

Init = Literal["uniform", "ls", "zeros"]
INITS: tuple[str, ...] = ("uniform", "ls", "zeros")
Unseen = Literal["uniform", "zeros"]
UNSEEN: tuple[str, ...] = ("uniform", "zeros")
DENSE_MAX_CLASSES = 2048  # auto mode: dense up to this many classes, sparse above
DEFAULT_TOPK = 64


def distributed_world() -> int:
    """Number of processes when torch.distributed is initialized, else 1."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


class OnlineLabelSmoothing(MethodLoss):
    """Stateful OLS loss. ``self.training`` decides whether a call accumulates.

    Args:
        num_classes: K.
        hard_weight: weight of CE(onehot) (paper: 0.5).
        soft_weight: weight of CE(S[y]) (paper: 0.5).
        init: soft labels of the first period: ``"uniform"`` (paper), ``"ls"`` (uniform label
            smoothing with ``init_alpha``) or ``"zeros"`` (official code: no soft term at first).
        init_alpha: smoothing weight for ``init="ls"``.
        topk: sparse representation with k classes per row. ``None``: dense when
            ``num_classes <= 2048``, else sparse with k = 64.
        dense: force the dense representation.
        unseen: soft label of a class with no correct prediction in the period: ``"uniform"``
            1/K (paper), or ``"zeros"`` (no soft term for it; the MaxSup authors' OLS baseline).
        freeze_above: when set, a class whose current soft label already has a largest entry of
            at least this value keeps it at the period's end (the official fine-grained script
            uses 0.88); classes with no correct prediction still get the ``unseen`` label.

    Official variants: the paper's Algorithm 1 is the defaults; the official fine-grained script
    is ``hard_weight=1, soft_weight=1, freeze_above=0.88``; the MaxSup authors' OLS baseline
    gives unseen classes ``unseen="zeros"``.

    State (buffers, in ``state_dict()``): the soft labels, this period's accumulators,
    ``count`` (correct positions per class), ``periods`` (finished periods) and ``shape_info``
    (K and k, checked on load).

    Example:
        >>> import torch
        >>> ols = OnlineLabelSmoothing(3).train()
        >>> logits, target = torch.tensor([[4.0, 0.0, 0.0], [0.0, 0.0, 1.0]]), torch.tensor([0, 1])
        >>> _ = ols(logits, target)           # row 0 is predicted correctly: accumulated
        >>> ols.end_period()                   # epoch end: S[0] = softmax(row 0), others uniform
        >>> [round(v, 3) for v in ols.soft_labels()[0].tolist()]
        [0.965, 0.018, 0.018]
    """

    NEEDS_NUM_CLASSES = True
    PERIODIC = True
    #: soft-label buffers that states saved before the table was a submodule hold at the top level
    TABLE_BUFFERS = ("soft", "acc", "soft_idx", "soft_val", "soft_tail", "acc_idx", "acc_val", "acc_tail")

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
        unseen: Unseen = "uniform",
        freeze_above: float | None = None,
    ) -> None:
        super().__init__()
        check_num_classes(num_classes)
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, got {init!r}")
        init_alpha = check_alpha(init_alpha, "init_alpha")
        if unseen not in UNSEEN:
            raise ValueError(f"unseen must be one of {UNSEEN}, got {unseen!r}")
        self.unseen = unseen
        self.freeze_above = None if freeze_above is None else check_alpha(freeze_above, "freeze_above")
        k = int(num_classes)
        if topk is not None and not 1 <= int(topk) <= k:
            raise ValueError(f"topk must be in [1, num_classes={k}], got {topk!r}")
        if dense and topk is not None:
            raise ValueError("give either dense=True or topk, not both")
        self.num_classes = k
        self.hard_weight = check_weight(hard_weight, "hard_weight")
        self.soft_weight = check_weight(soft_weight, "soft_weight")
        self.table: DenseSoftLabels | SparseSoftLabels = (
            DenseSoftLabels(k) if dense or (topk is None and k <= DENSE_MAX_CLASSES)
            else SparseSoftLabels(k, int(topk or min(DEFAULT_TOPK, k))))
        # (num_classes, topk): checked on load so a state for another K or k is refused.
        self.register_buffer("shape_info", torch.tensor([k, 0 if self.dense else self.topk]))
        self.register_buffer("count", torch.zeros(k))  # correct positions per class, this period
        self.register_buffer("periods", torch.zeros((), dtype=torch.long))  # finished periods
        if init == "zeros":
            on, off = 0.0, 0.0
        elif init == "uniform":
            on, off = 1.0 / k, 1.0 / k
        else:
            on, off = 1.0 - init_alpha + init_alpha / k, init_alpha / k
        with torch.no_grad():
            self.table.fill(on, off)
        self._self_mass: float | None = None  # mean S[y][y]; the soft labels change only at period ends

    @property
    def dense(self) -> bool:
        """``S`` is a K x K matrix (else top-k rows)."""
        return self.table.dense

    @property
    def topk(self) -> int:
        """Classes kept per soft label (K when dense)."""
        return self.table.topk

    def soft_labels(self) -> Tensor:
        """The current soft labels as a dense K x K matrix (row y = S[y]); for inspection."""
        return self.table.dense_labels()

    def target_mass(self, target: Tensor) -> Tensor:
        """``S[y][y]`` for each target in ``target`` [N] (valid classes only)."""
        return self.table.target_mass(target)

    # ------------------------------------------------------------------ loss
    def parts(self, logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX,
              keep_per_position: bool = False) -> LossParts:
        """:class:`~labelreg_nlp.losses.parts.LossParts` with ``nll`` = summed CE(onehot),
        ``penalty`` = summed CE(S[y]) and ``loss = hard_weight * nll + soft_weight * penalty``.
        Accumulates when ``self.training``."""
        check_inputs(logits, target)
        flat_logits, flat_target, mask = flatten_batch(logits, target, ignore_index, self.validate_args)
        check_logit_classes(flat_logits.size(-1), self.num_classes, "this OLS state has")
        top = self.topk if self.training and not self.dense else 0  # sparse: top-k of correct rows
        stats = logit_stats(flat_logits, flat_target, self.table.soft_index(flat_target), top=top)
        zero = torch.zeros((), device=flat_logits.device)
        nll = torch.where(mask, stats.lse - stats.z_target, zero)
        soft_ce = torch.where(mask, self.table.soft_ce(flat_logits, flat_target, stats), zero)
        per_position = self.hard_weight * nll + self.soft_weight * soft_ce
        correct = mask & (stats.argmax == flat_target)
        if self.training:
            self.accumulate(flat_logits, flat_target, correct, stats)
        return LossParts.of_positions(per_position, nll, soft_ce, ntokens=mask.sum(), ncorrect=correct.sum(),
                                      shape=target.shape, keep_per_position=keep_per_position)

    def soft_parts(self, logits: Tensor, target: Tensor, *, keep_per_position: bool = False) -> LossParts:
        """Soft targets ``t`` ``[..., K]`` (Mixup / CutMix): per row
        ``hard_weight * CE(t, p) + soft_weight * CE(t S, p)``, the per-class loss averaged under
        ``t`` (``t S`` mixes the soft labels of the mixed classes). When training, a row whose
        arg-max equals ``argmax t`` is accumulated into the soft label of ``argmax t``. One-hot
        ``t`` gives :meth:`parts` exactly. ``S`` is taken dense here (K x K; vision scale)."""
        flat_logits, flat_t = check_soft_target(logits, target)
        check_logit_classes(flat_logits.size(-1), self.num_classes, "this OLS state has")
        hard = flat_t.argmax(dim=-1)
        top = self.topk if self.training and not self.dense else 0
        stats = logit_stats(flat_logits, hard, top=top)
        dtype = stats.lse.dtype
        z = flat_logits.to(dtype)
        flat_t = flat_t.to(dtype)
        mixed = flat_t @ self.soft_labels().to(device=z.device, dtype=dtype)  # [N, K]
        nll = flat_t.sum(-1) * stats.lse - weighted_logits(flat_t, z).sum(-1)
        soft_ce = mixed.sum(-1) * stats.lse - weighted_logits(mixed, z).sum(-1)
        per_position = self.hard_weight * nll + self.soft_weight * soft_ce
        correct = stats.argmax == hard
        if self.training:
            self.accumulate(flat_logits, hard, correct, stats)
        return LossParts.of_positions(per_position, nll, soft_ce, ntokens=torch.tensor(flat_logits.size(0), device=logits.device),
                                      ncorrect=correct.sum(), shape=target.shape[:-1],
                                      keep_per_position=keep_per_position)

    @torch.no_grad()
    def accumulate(self, logits: Tensor, target: Tensor, correct: Tensor, stats: LogitStats) -> None:
        """Add softmax(logits) (T = 1) of the ``correct`` rows to their target's accumulator; rows
        with a NaN or +inf logit are left out (a half-precision overflow must not poison the state).

        ``stats`` is the :func:`~labelreg_nlp.losses.logit_stats.logit_stats` of these logits
        (with ``top=self.topk`` when sparse).
        """
        # a row with a NaN or +inf logit has a non-finite log-sum-exp: never let it into the state
        rows = (correct & torch.isfinite(stats.lse)).nonzero().squeeze(-1)
        if rows.numel() == 0:
            return
        y = target[rows]
        self.count.index_add_(0, y, torch.ones(rows.numel(), device=self.count.device))
        self.table.accumulate_rows(logits, rows, y, stats.lse[rows].float(), stats)

    # ------------------------------------------------------------------ periods
    @torch.no_grad()
    def end_period(self) -> None:
        """End the period: all-reduce the accumulators across processes (when torch.distributed
        is initialized), make them the new soft labels, and start a new period."""
        if distributed_world() > 1:
            dist.all_reduce(self.count)
            self.table.all_reduce()
        seen = self.count > 0
        keep = torch.zeros_like(seen) if self.freeze_above is None else seen & (self.table.row_max() >= self.freeze_above)
        fallback = 1.0 / self.num_classes if self.unseen == "uniform" else 0.0
        self.table.finish_period(seen & ~keep, keep, self.count, fallback)
        self.count.zero_()
        self.periods += 1
        self._self_mass = None

    LOG_VALUES = ("ols_periods", "ols_self_mass")
    TARGET_LOG_SUMS = ("ols_target_mass",)

    def log_values(self) -> dict[str, float]:
        """``ols_periods`` (finished periods) and ``ols_self_mass`` (mean over classes of S[y][y]).

        Adapters call this at every logged step; the mean over K classes is computed once per period.
        """
        if self._self_mass is None:
            classes = torch.arange(self.num_classes, device=self.count.device)
            self._self_mass = float(self.target_mass(classes).mean())
        return {"ols_periods": int(self.periods), "ols_self_mass": self._self_mass}

    def target_log_sums(self, target: Tensor) -> dict[str, Tensor]:
        """``ols_target_mass``: the sum of ``S[y][y]`` over the targets (1/K each before the first period)."""
        return {"ols_target_mass": self.target_mass(target).sum()}

    # ------------------------------------------------------------------ state
    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys,
                              unexpected_keys, error_msgs) -> None:
        for name in self.TABLE_BUFFERS:  # a state saved by 0.1.0: the table's buffers at the top level
            if prefix + name in state_dict:
                state_dict[prefix + "table." + name] = state_dict.pop(prefix + name)
        key = prefix + "shape_info"
        if key in state_dict:
            saved = [int(v) for v in state_dict[key].tolist()]
            mine = [int(v) for v in self.shape_info.tolist()]
            if saved != mine:
                raise ValueError(
                    f"OnlineLabelSmoothing state was saved for {_describe(saved)}; this module has {_describe(mine)}"
                )
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys,
                                      unexpected_keys, error_msgs)
        self._self_mass = None

    def extra_repr(self) -> str:
        kind = "dense" if self.dense else f"topk={self.topk}"
        extra = f", unseen={self.unseen!r}" if self.unseen != "uniform" else ""
        if self.freeze_above is not None:
            extra += f", freeze_above={self.freeze_above}"
        return (f"num_classes={self.num_classes}, {kind}, hard_weight={self.hard_weight}, "
                f"soft_weight={self.soft_weight}{extra}")


def _describe(shape_info: list[int]) -> str:
    return f"num_classes={shape_info[0]}, " + ("dense" if shape_info[1] == 0 else f"topk={shape_info[1]}")


@dataclass(frozen=True)
class OLSOptions:
    """Options of Online Label Smoothing (``ols``); the defaults are the paper's Algorithm 1.

    Example:
        >>> OLSOptions(topk=8).build(num_classes=100).table
        SparseSoftLabels(num_classes=100, topk=8)
    """

    hard_weight: float = option(0.5, "weight of CE against the hard label (paper: 0.5)", valid=">= 0")
    soft_weight: float = option(0.5, "weight of CE against the online soft label (paper: 0.5)", valid=">= 0")
    init: Init = option("uniform", "soft labels of the first period: uniform (paper), ls (label smoothing with "
                                   "init_alpha), zeros (official code: no soft term at first)")
    init_alpha: float = option(0.1, "smoothing weight of init 'ls'", valid="[0, 1]")
    topk: int | None = option(None, f"sparse soft labels keeping the top-k classes per row (default: dense up to "
                                    f"{DENSE_MAX_CLASSES} classes, else k = {DEFAULT_TOPK})", valid="[1, K]")
    dense: bool = option(False, "force dense K x K soft labels")
    unseen: Unseen = option("uniform", "soft label of a class with no correct prediction in the period: uniform "
                                       "(paper), zeros (the MaxSup authors' OLS baseline)")
    freeze_above: float | None = option(None, "keep a class's soft label once its largest entry reaches this value "
                                              "(official fine-grained script: 0.88; default: always update)",
                                        valid="[0, 1]")

    def validate(self, label: Label = same_name) -> None:
        """``ValueError`` naming the first bad option, spelled by ``label`` (``topk``'s upper
        bound, K, is checked when the loss is built)."""
        check_weight(self.hard_weight, label("hard_weight"))
        check_weight(self.soft_weight, label("soft_weight"))
        check_choice(self.init, INITS, label("init"))
        check_alpha(self.init_alpha, label("init_alpha"))
        if self.topk is not None and (isinstance(self.topk, bool) or int(self.topk) != self.topk or self.topk < 1):
            raise ValueError(f"{label('topk')} must be an integer >= 1, got {self.topk!r}")
        if self.dense and self.topk is not None:
            raise ValueError(f"give either {label('dense')} or {label('topk')}, not both")
        check_choice(self.unseen, UNSEEN, label("unseen"))
        if self.freeze_above is not None:
            check_alpha(self.freeze_above, label("freeze_above"))

    def build(self, num_classes: int | None = None, schedule_horizon: int | None = None) -> OnlineLabelSmoothing:
        """The loss module over ``num_classes`` (required; ``schedule_horizon`` is not used)."""
        if num_classes is None:
            raise ValueError("method 'ols' needs num_classes (the size of the label set or vocabulary)")
        return OnlineLabelSmoothing(num_classes, hard_weight=self.hard_weight, soft_weight=self.soft_weight,
                                    init=self.init, init_alpha=self.init_alpha, topk=self.topk, dense=self.dense,
                                    unseen=self.unseen, freeze_above=self.freeze_above)
