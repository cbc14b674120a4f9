"""Losses whose smoothing distribution is learned: the machinery LS++ and LLS share.

Each class ``y`` has a learned distribution ``q_y = softmax(r_y)`` over the classes (a row of a
:class:`~labelreg_nlp.losses.learned_tables.RowTable`), and the target of a position with class
``y`` is ``t = (1 - alpha) onehot(y) + alpha q_y``. A method gives a *kernel*: two terms per
position computed from the logits ``z`` and ``r_y``, and their gradients with respect to both.

One autograd function walks the non-ignored positions in row chunks, in float32: per chunk it
builds ``r_y`` from the table, computes the two terms, and keeps only O(N) numbers for the
backward, which recomputes each chunk, writes the gradient of the logits once and adds the
chunk's row gradients to the table's parameters. No float32 [N, K] tensor (of ``p``, ``q``,
``t`` or their gradients) is held whole, as with :mod:`labelreg_nlp.losses.logit_stats`.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from .base import MethodLoss
from .checks import check_alpha, check_inputs, check_logit_classes, check_num_classes
from .learned_tables import FactoredTable, FullTable, RowTable
from .logit_stats import compute_dtype, first_argmax, row_slices
from .options import Label, same_name
from .parts import IGNORE_INDEX, LossParts, flatten_batch

# The kernels keep about six chunk-sized float32 temporaries alive: chunks of a quarter of
# logit_stats' size hold that to ~25 MiB whatever N is, up to 32k classes. Above, a chunk keeps
# at least 32 rows (96 MiB of temporaries at 128k): building 8 rows of a factored table at a time
# (u_y V^T) reads all of V per 8 rows, and 32 rows per chunk made an LS++/LLS step 1.6x faster
# at 128k classes on a 2-core CPU.
CHUNK_FRACTION = 4
CHUNK_MIN_ROWS = 32
FULL_MAX_CLASSES = 2048  # auto mode: the full table up to this many classes, factored above
DEFAULT_RANK = 64


class ChunkTerms(NamedTuple):
    """What a kernel's forward returns for a chunk of n positions."""

    terms: Tensor  # [n, 2] the two loss terms per position
    saved: Tensor  # [n, m] per-position numbers its backward needs (besides z, r, y); lse(z) first
    stats: Tensor  # [n, 2] entropy (nats) and largest entry of q_y, for logging


def rowdot(a: Tensor, b: Tensor) -> Tensor:
    """``(a * b).sum(-1)`` without the [n, K] product (``vecdot``: 4x faster than the
    ``einsum`` it replaced on a 2-core CPU at K = 10k, which went through a batched matmul)."""
    return torch.linalg.vecdot(a, b)


def softmax_and_lse(z: Tensor) -> tuple[Tensor, Tensor]:
    """``(softmax(z), logsumexp(z))`` over the last dimension with one ``exp`` of ``z``.

    A row of only ``-inf`` gives ``lse = -inf`` and NaN probabilities, a row with ``+inf`` gives
    ``lse = +inf`` and NaN probabilities, as torch's ``logsumexp`` and ``softmax`` do.
    """
    top = z.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros((), dtype=z.dtype, device=z.device))
    e = torch.sub(z, top).exp_()
    total = e.sum(dim=-1, keepdim=True)
    return e.div_(total), total.log_().add_(top).squeeze(-1)


def add_at(x: Tensor, col: Tensor, values: Tensor) -> Tensor:
    """``x[i, col[i]] += values[i]`` in place (one column per row; gather and scatter, which
    inductor generates for any shape, where its atomic ``scatter_add`` failed for one row)."""
    return x.scatter_(1, col, x.gather(1, col).add_(values))


def class_rows(x: Tensor, inv: Tensor) -> Tensor:
    """``x[inv]``: each position's class row ``[n, K]``; ``x`` itself, not a copy, when every
    position is its own class (``inv`` is then ``0..n-1``: uniform targets over a large K)."""
    if x.size(0) == inv.size(0):
        return x
    return x.index_select(0, inv)


def add_class_rows(out: Tensor, inv: Tensor, a: Tensor, b: Tensor, value: float) -> Tensor:
    """``out[c] += value * sum over the positions i of class c of a[i] * b[i]``, in place."""
    if out.size(0) == inv.size(0):
        return out.addcmul_(a, b, value=value)
    return out.index_add_(0, inv, a * b, alpha=value)


@torch.compiler.disable  # inductor's CPU scatter-add fails to generate for one class (a [1] buffer)
def class_sums(values: Tensor, inv: Tensor, num_rows: int) -> Tensor:
    """``[U]`` the sums of ``values`` [n] over each class's positions."""
    return values.new_zeros(num_rows).index_add_(0, inv, values)


def per_class(values: Tensor, inv: Tensor, num_rows: int) -> Tensor:
    """``[U]`` the value each class's positions share (``values[i]`` is the same for every
    position ``i`` of class ``inv[i]``)."""
    return values.new_empty(num_rows).scatter_(0, inv, values)


class Kernel:
    """The two terms of a method and their gradients (see LS++ and LLS).

    A chunk holds ``n`` positions sorted by class and the rows of its ``U`` distinct classes:
    ``z`` [n, K] and the row logits ``r`` [U, K] are float32 (float64 for float64 logits),
    ``classes`` [U] the classes in increasing order, ``inv`` [n] each position's row
    (``y = classes[inv]``). What depends on a class alone (``q_y``, ``log q_y``, their
    normaliser) is computed once per row; per position only what depends on ``z``. Kernels may
    overwrite ``r`` (built for them), never ``z``.
    """

    def forward(self, z: Tensor, r: Tensor, classes: Tensor, inv: Tensor, alpha: float) -> ChunkTerms:
        raise NotImplementedError

    def backward(self, z: Tensor, r: Tensor, classes: Tensor, inv: Tensor, alpha: float, saved: Tensor,
                 g: Tensor) -> tuple[Tensor, Tensor]:
        """Gradients of ``(g * terms).sum()`` with respect to ``z`` ([n, K]) and ``r`` ([U, K]:
        each row summed over its class's positions)."""
        raise NotImplementedError


#: set to 1 to run the kernels' per-chunk math through ``torch.compile`` (inductor: C++ on CPU,
#: Triton on CUDA), which fuses their elementwise passes; read at every call
COMPILE_VARIABLE = "LABELREG_NLP_COMPILE"
_compiled: dict[tuple[type, str], Callable[..., Any]] = {}
_compile_failed: list[str] = []  # the reason, once compiling failed: eager from then on


def kernel_step(kernel: Kernel, direction: str) -> Callable[..., Any]:
    """``kernel.forward`` or ``kernel.backward``; compiled (shapes dynamic, one graph per dtype
    and device) when ``LABELREG_NLP_COMPILE=1``, with one warning and the eager step where
    compiling fails."""
    step = getattr(kernel, direction)
    if os.environ.get(COMPILE_VARIABLE, "0") != "1" or _compile_failed:
        return step
    key = (type(kernel), direction)
    if key not in _compiled:
        _compiled[key] = torch.compile(step, dynamic=True)
    compiled = _compiled[key]

    def run(*args: Any) -> Any:
        if _compile_failed:
            return step(*args)
        try:
            return compiled(*args)
        except Exception as error:  # a missing compiler, a shape inductor cannot generate: the eager step
            _compile_failed.append(f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
            warnings.warn(f"{COMPILE_VARIABLE}=1: torch.compile failed ({_compile_failed[0]}); "
                          "running the learned-target kernels eagerly from now on", stacklevel=2)
            return step(*args)

    return run


def _chunks(rows: Tensor, target: Tensor, order: Tensor, k: int) -> Iterator[tuple[slice, Tensor, Tensor, Tensor, Tensor]]:
    """The live positions ``rows`` in the order ``order`` (sorted by class), in chunks: ``(slice
    of the sorted order, the chunk's positions, their indices in rows, the chunk's classes, each
    position's class row)``. A class split by a chunk boundary gets its row built in both chunks."""
    for sl in row_slices(rows.numel(), k, CHUNK_FRACTION, CHUNK_MIN_ROWS):
        live = order[sl]
        idx = rows[live]
        classes, inv = torch.unique_consecutive(target[idx], return_inverse=True)
        yield sl, idx, live, classes, inv


class _LearnedTargetFn(torch.autograd.Function):
    """``(terms [N_live, 2], info [N_live, 4])`` of the positions ``rows``; ``params`` are the
    table's parameters, passed so autograd gives them the gradients the backward computes."""

    @staticmethod
    def forward(ctx, logits: Tensor, target: Tensor, rows: Tensor, alpha: float, kernel: Kernel,  # type: ignore[override]
                table: RowTable, *params: Tensor):
        n_live, k = rows.numel(), logits.size(1)
        dtype = compute_dtype(logits.dtype)
        terms = torch.empty(n_live, 2, dtype=dtype, device=logits.device)
        # per live position: nll, correct (0/1), entropy and largest entry of q_y
        info = torch.empty(n_live, 4, dtype=dtype, device=logits.device)
        saved = []  # in the chunks' (sorted) order
        forward = kernel_step(kernel, "forward")
        order = torch.sort(target[rows], stable=True).indices  # the backward walks the same order
        for _, idx, live, classes, inv in _chunks(rows, target, order, k):
            z = logits.index_select(0, idx).to(dtype)
            y = target[idx]
            out = ChunkTerms(*forward(z, table.rows(classes, dtype), classes, inv, alpha))
            terms.index_copy_(0, live, out.terms)
            saved.append(out.saved)
            nll = out.saved[:, 0] - z.gather(1, y[:, None]).squeeze(1)
            correct = (first_argmax(z) == y).to(dtype)
            info.index_copy_(0, live, torch.cat([torch.stack([nll, correct], dim=1), out.stats], dim=1))
        saved_all = torch.cat(saved) if saved else torch.empty(0, 2, dtype=dtype, device=logits.device)
        ctx.kernel, ctx.table, ctx.alpha = kernel, table, alpha
        ctx.save_for_backward(logits, target, rows, order, saved_all)
        ctx.mark_non_differentiable(info)
        return terms, info

    @staticmethod
    def backward(ctx, g_terms: Tensor | None, _g_info: Tensor | None):  # type: ignore[override]
        logits, target, rows, order, saved = ctx.saved_tensors
        kernel, table, alpha = ctx.kernel, ctx.table, ctx.alpha
        params = table.params()
        n, k = logits.shape
        dtype = saved.dtype
        grads = [torch.zeros(p.shape, dtype=dtype, device=p.device) for p in params]
        grad = torch.zeros_like(logits) if rows.numel() < n or g_terms is None else torch.empty_like(logits)
        if g_terms is not None:
            backward = kernel_step(kernel, "backward")
            for sl, idx, live, classes, inv in _chunks(rows, target, order, k):
                g, chunk_saved = g_terms.index_select(0, live).to(dtype), saved[sl]
                # positions with no upstream gradient get an exact zero, whatever their logits,
                # and add nothing to their class's row
                dead = (g == 0).all(-1)
                if bool(dead.any()):
                    grad.index_fill_(0, idx[dead], 0.0)
                    keep = (~dead).nonzero().squeeze(-1)
                    idx, g, chunk_saved = idx[keep], g[keep], chunk_saved[keep]
                    classes, inv = torch.unique_consecutive(classes[inv[keep]], return_inverse=True)
                z = logits.index_select(0, idx).to(dtype)
                grad_z, grad_r = backward(z, table.rows(classes, dtype), classes, inv, alpha, chunk_saved, g)
                grad.index_copy_(0, idx, grad_z.to(grad.dtype))
                table.add_row_grad(classes, grad_r, grads)
        param_grads = tuple(gr.to(p.dtype) for gr, p in zip(grads, params))
        return (grad, None, None, None, None, None, *param_grads)


class LearnedTargetLoss(MethodLoss):
    """Base of the learned-target methods: a table of row logits, alpha, and the chunked loss.

    Args:
        num_classes: K.
        alpha: weight of the learned distribution in the target.
        rank: factored table of this rank (``r_y = u_y V^T``); ``None``: the full table up to
            2048 classes, else rank 64.
        full: force the full table (K x K parameters).

    Subclasses set :attr:`kernel`, :attr:`exclude_target`, :attr:`NAME` and alpha's range.
    """

    kernel: Kernel
    exclude_target: bool
    NEEDS_NUM_CLASSES = True
    NAME: str = ""
    TITLE: str = ""
    #: alpha = 1 allowed (LLS) or not (LS++), and why alpha's range is what it is
    ALPHA_ONE: bool = True
    ALPHA_WHY: str = ""
    # fairseq logs the batch's sums per token (TARGET_LOG_SUMS); log_values() gives the same
    # quantities as means of the last batch (the Hugging Face trainers' log lines).
    LOG_VALUES: tuple[str, ...] = ()

    def __init__(self, num_classes: int, *, alpha: float = 0.1, rank: int | None = None, full: bool = False) -> None:
        super().__init__()
        k = check_num_classes(num_classes)
        self.alpha = self.check_alpha(alpha)
        self.check_table(rank, full, full_name="full=True")
        self.num_classes = k
        if full or (rank is None and k <= FULL_MAX_CLASSES):
            self.table: RowTable = FullTable(k, self.exclude_target)
        else:
            self.table = FactoredTable(k, int(rank or DEFAULT_RANK), self.exclude_target)
        self._last: tuple[Tensor, Tensor] | None = None  # last batch: summed stats, count
        self._chunked = False  # inside batch_in_chunks(): parts() adds to _last

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.TARGET_LOG_SUMS = (f"{cls.NAME}_entropy", f"{cls.NAME}_top_mass")

    @classmethod
    def check_alpha(cls, alpha: float, name: str = "alpha") -> float:
        """``alpha`` as a float, or ``ValueError`` naming it (as ``name``) outside (0, 1] (LLS) or
        (0, 1) (LS++)."""
        return check_alpha(alpha, name, "(0, 1]" if cls.ALPHA_ONE else "(0, 1)", f"for {cls.TITLE} ({cls.ALPHA_WHY})")

    @staticmethod
    def check_table(rank: int | None, full: bool, rank_name: str = "rank", full_name: str = "full") -> None:
        """``ValueError`` naming ``rank`` unless ``None`` or an integer >= 1, or both given."""
        if rank is not None and (isinstance(rank, bool) or int(rank) != rank or int(rank) < 1):
            raise ValueError(f"{rank_name} must be an integer >= 1, got {rank!r}")
        if full and rank is not None:
            raise ValueError(f"give either {full_name} or {rank_name}, not both")

    @property
    def full(self) -> bool:
        return isinstance(self.table, FullTable)

    def terms(self, logits: Tensor, target: Tensor, ignore_index: int | None = IGNORE_INDEX) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Per position ``[N]``: the two terms (0 where ignored), then ``info`` [N_live, 4] and the mask."""
        check_inputs(logits, target)
        flat_logits, flat_target, mask = flatten_batch(logits, target, ignore_index, self.validate_args)
        check_logit_classes(flat_logits.size(-1), self.num_classes, f"this {self.NAME} table has")
        rows = mask.nonzero().squeeze(-1)
        live_terms, info = _LearnedTargetFn.apply(flat_logits, flat_target, rows, self.alpha, self.kernel,
                                                  self.table, *self.table.params())
        n = flat_target.numel()
        first = live_terms.new_zeros(n).index_put((rows,), live_terms[:, 0])
        second = live_terms.new_zeros(n).index_put((rows,), live_terms[:, 1])
        return first, second, info, mask

    def parts(self, logits: Tensor, target: Tensor, *, ignore_index: int | None = IGNORE_INDEX,
              keep_per_position: bool = False) -> LossParts:
        """``loss`` = summed ``(first + second) / 2``, ``nll`` = summed CE(onehot), ``penalty`` =
        summed second term (what trains the table: the reverse term)."""
        first, second, info, mask = self.terms(logits, target, ignore_index)
        per_position = (first + second) / 2
        nll = torch.zeros_like(first).index_put((mask.nonzero().squeeze(-1),), info[:, 0])
        last = (info[:, 2:].sum(0).detach(), mask.sum())
        if self._chunked and self._last is not None:
            last = (self._last[0] + last[0], self._last[1] + last[1])
        self._last = last
        return LossParts.of_positions(per_position, nll, second, ntokens=mask.sum(), ncorrect=info[:, 1].sum().long(),
                                      shape=target.shape, keep_per_position=keep_per_position)

    @contextmanager
    def batch_in_chunks(self) -> Iterator[None]:
        """The last batch's logged statistics sum over every chunk's :meth:`parts` call."""
        self._last, self._chunked = None, True
        try:
            yield
        finally:
            self._chunked = False

    # ------------------------------------------------------------------ inspection and logging
    @torch.no_grad()
    def learned_distribution(self, classes: Tensor | None = None) -> Tensor:
        """The learned distributions ``q_y`` (rows ``[len(classes), K]``, float32; all K rows by default).

        LS++: ``c_y`` (0 at ``y``); LLS: ``softmax(Q_y)``. The training target is
        ``(1 - alpha) onehot(y) + alpha q_y``.
        """
        if classes is None:
            classes = torch.arange(self.num_classes, device=self.table.params()[0].device)
        out = [torch.softmax(self.table.rows(classes[sl], torch.float32), dim=-1)
               for sl in row_slices(classes.numel(), self.num_classes)]
        return torch.cat(out) if out else torch.empty(0, self.num_classes)

    def log_values(self) -> dict[str, float]:
        """Mean over the last batch's positions of the entropy (nats) of ``q_y`` and of
        its largest entry: ``<name>_entropy``, ``<name>_top_mass`` (none before the first batch)."""
        if self._last is None:
            return {}
        sums, count = self._last
        return dict(zip(self.TARGET_LOG_SUMS, (sums / count.clamp(min=1)).tolist()))

    def target_log_sums(self, target: Tensor) -> dict[str, Tensor]:
        """The same two quantities summed over the last batch's positions (fairseq
        averages them over tokens); ``target`` is the batch's targets, already read by :meth:`parts`."""
        if self._last is None:
            return {}
        return dict(zip(self.TARGET_LOG_SUMS, self._last[0]))

    # ------------------------------------------------------------------ state
    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any) -> None:
        mine = {name: tuple(p.shape) for name, p in self.table.named_parameters(prefix=prefix + "table")}
        saved = {key: tuple(v.shape) for key, v in state_dict.items() if key.startswith(prefix + "table.")}
        if saved and saved != mine:
            raise ValueError(f"{self.NAME} state was saved with table {_describe(saved, prefix)}; this module has "
                             f"{_describe(mine, prefix)} (num_classes={self.num_classes}, {self.table.form})")
        super()._load_from_state_dict(state_dict, prefix, *args)

    def extra_repr(self) -> str:
        return f"num_classes={self.num_classes}, alpha={self.alpha}, {self.table.form}"


def _describe(shapes: dict[str, tuple[int, ...]], prefix: str) -> str:
    """``weight [6, 5]`` or ``u [5, 4], v [5, 4]``: the table's parameters under ``prefix + "table."``."""
    start = len(prefix + "table.")
    return ", ".join(f"{key[start:]} {list(shape)}" for key, shape in sorted(shapes.items()))


class LearnedTableOptions:
    """What the options dataclasses of LS++ and LLS share (:class:`~labelreg_nlp.losses.lspp.LSPPOptions`,
    :class:`~labelreg_nlp.losses.lls.LLSOptions`): their fields ``alpha``, ``rank``, ``full``
    (each with its method's help) are declared there, ``loss`` names the module to build."""

    loss: ClassVar[type[LearnedTargetLoss]]
    alpha: float
    rank: int | None
    full: bool

    def validate(self, label: Label = same_name) -> None:
        """``ValueError`` (or ``TypeError``) naming the first bad option, spelled by ``label``."""
        self.loss.check_alpha(self.alpha, label("alpha"))
        self.loss.check_table(self.rank, self.full, label("rank"), label("full"))

    def build(self, num_classes: int | None = None, schedule_horizon: int | None = None) -> LearnedTargetLoss:
        """The loss module over ``num_classes`` (required; ``schedule_horizon`` is not used)."""
        if num_classes is None:
            raise ValueError(f"method {self.loss.NAME!r} needs num_classes (the size of the label set or vocabulary)")
        return self.loss(num_classes, alpha=self.alpha, rank=self.rank, full=self.full)
