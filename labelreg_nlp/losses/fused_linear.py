"""The output layer and the loss in one pass: no ``[N, V]`` logits for the whole batch.

A language model's loss reads logits ``z = h W^T + b`` (hidden states ``h`` [N, d], output
projection ``W`` [V, d]); at a 128k vocabulary, 8 x 4096 tokens of float32 logits are 16 GiB
before their gradient. Every loss of this package depends on ``z`` row by row, so
:func:`fused_linear_parts` walks the non-ignored rows in chunks: for each chunk it computes the
chunk's logits, calls the method's own :meth:`~labelreg_nlp.losses.base.MethodLoss.parts` on them
(so every formula still lives once, in the method's module), takes the chunk's logit gradient
``G = d loss / d z`` by autograd, and folds it at once into the gradients of the inputs:

    d loss / d h = G W          d loss / d W += G^T h          d loss / d b += sum_rows G

plus the method's own parameters (LS++, LLS tables). Only those gradients (the size of the
inputs) and one chunk of logits are alive at a time; the backward only scales them by the
upstream gradient. Liger-Kernel's fused linear cross-entropy does the same for plain and
label-smoothed CE; this module does it for every method of the registry.

Stateful methods see the same logits as on the plain path: Online Label Smoothing accumulates the
probabilities of each chunk in its forward, once.

What it does not do: soft (Mixup) targets, per-position losses (``reduction="none"``), gradients
of the logged ``nll``/``penalty`` sums (only ``loss`` is differentiable), double backward.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import MethodLoss
from .checks import Reduction, check_reduction, check_tensor
from .logit_stats import compute_dtype
from .parts import IGNORE_INDEX, LossParts, flatten_target

#: elements of one chunk of logits (float32: 64 MiB) when ``chunk_rows`` is not given
FUSED_CHUNK_ELEMENTS = 1 << 24


def fused_chunk_rows(n_classes: int) -> int:
    """Rows per chunk: about :data:`FUSED_CHUNK_ELEMENTS` logits, at least 1.

    Example:
        >>> fused_chunk_rows(128_000), fused_chunk_rows(10_000)
        (131, 1677)
    """
    return max(1, FUSED_CHUNK_ELEMENTS // max(1, n_classes))


class _FusedLinearFn(torch.autograd.Function):
    """``(loss sum, [nll sum, penalty sum], ncorrect)`` of rows ``hidden`` [n, d] with targets
    ``target`` [n]; gradients computed in the forward, scaled in the backward."""

    @staticmethod
    def forward(ctx, hidden: Tensor, weight: Tensor, bias: Tensor | None, target: Tensor,  # type: ignore[override]
                method: MethodLoss, chunk_rows: int, *params: Tensor):
        needs = ctx.needs_input_grad
        want = [needs[0], needs[1], bias is not None and needs[2], *needs[6:]]
        any_grad = any(want)
        n = hidden.size(0)
        dtype = compute_dtype(hidden.dtype)
        sums = torch.zeros(3, dtype=dtype, device=hidden.device)  # loss, nll, penalty
        ncorrect = torch.zeros((), dtype=torch.long, device=hidden.device)
        grad_h = torch.empty_like(hidden) if want[0] else None
        grad_w = torch.zeros_like(weight) if want[1] else None
        grad_b = torch.zeros_like(bias) if want[2] else None
        grad_p = [torch.zeros_like(p) if w else None for p, w in zip(params, want[3:])]
        learn = [p for p, w in zip(params, want[3:]) if w]
        with method.batch_in_chunks():
            for start in range(0, n, chunk_rows):
                h = hidden[start:start + chunk_rows]
                z = torch.nn.functional.linear(h, weight, bias)  # the model's dtype, as its own output layer
                with torch.enable_grad():
                    z.requires_grad_(any_grad)
                    parts = method.parts(z, target[start:start + chunk_rows], ignore_index=None)  # ignored rows already dropped
                    grads = torch.autograd.grad(parts.loss, [z, *learn], allow_unused=True) if any_grad else ()
                sums += torch.stack([parts.loss.detach(), parts.nll.detach(), parts.penalty.detach()])
                ncorrect += parts.ncorrect
                if not any_grad:
                    continue
                g = grads[0].to(weight.dtype)
                if grad_h is not None:
                    torch.mm(g, weight, out=grad_h[start:start + chunk_rows])
                if grad_w is not None:
                    grad_w.addmm_(g.t(), h)
                if grad_b is not None:
                    grad_b.add_(g.sum(0))
                for acc, gp in zip((a for a in grad_p if a is not None), grads[1:]):
                    if gp is not None:
                        acc.add_(gp)
        ctx.grads = (grad_h, grad_w, grad_b, *grad_p)
        logged = sums[1:].clone()
        ctx.mark_non_differentiable(logged, ncorrect)
        return sums[0].clone(), logged, ncorrect

    @staticmethod
    def backward(ctx, g_loss: Tensor, _g_logged: Tensor, _g_ncorrect: Tensor):  # type: ignore[override]
        # a plain sum's backward passes 1: hand over the stored gradients without a copy
        scale = None if bool(g_loss == 1) else g_loss
        out = [None if g is None else (g if scale is None else g * scale.to(g.dtype)) for g in ctx.grads]
        return (out[0], out[1], out[2], None, None, None, *out[3:])


def fused_linear_parts(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    method: MethodLoss,
    *,
    bias: Tensor | None = None,
    ignore_index: int | None = IGNORE_INDEX,
    chunk_rows: int | None = None,
) -> LossParts:
    """The method's loss of the logits ``hidden @ weight.T + bias``, without those logits.

    Args:
        hidden: ``[..., d]`` hidden states (the output layer's input), any float dtype.
        weight: ``[V, d]`` output projection (``nn.Linear.weight``, or a tied embedding's weight).
        target: ``[...]`` integer classes in ``[0, V)``.
        method: the method's module (``TokenLoss(...).method_loss``, ``MaxSupLoss(0.1)``, ...);
            its ``training`` flag decides whether a stateful method accumulates, as on logits.
        bias: ``[V]`` or ``None``.
        ignore_index: target value of positions left out of every term (and of the matmul).
        chunk_rows: rows per chunk (default: :func:`fused_chunk_rows` of V).

    Returns:
        :class:`~labelreg_nlp.losses.parts.LossParts` with the same sums as
        ``method.parts(hidden @ weight.T + bias, target, ignore_index)``; only ``loss`` is
        differentiable (with respect to ``hidden``, ``weight``, ``bias`` and the method's
        parameters), and no per-position values are kept.

    Example:
        >>> import torch
        >>> from labelreg_nlp import MaxSupLoss
        >>> h, w = torch.randn(6, 4, requires_grad=True), torch.randn(9, 4, requires_grad=True)
        >>> y = torch.tensor([1, 2, -100, 8, 0, 3])
        >>> fused = fused_linear_parts(h, w, y, MaxSupLoss(0.1), ignore_index=-100, chunk_rows=2)
        >>> plain = MaxSupLoss(0.1).parts(h @ w.T, y, ignore_index=-100)
        >>> torch.allclose(fused.loss, plain.loss), int(fused.ntokens)
        (True, 5)
    """
    check_tensor(hidden, "hidden")
    check_tensor(weight, "weight")
    check_tensor(target, "target")
    if bias is not None:
        check_tensor(bias, "bias")
    if not hidden.is_floating_point() or hidden.dim() < 1:
        raise TypeError(f"hidden must be a floating-point tensor [..., d], got {getattr(hidden, 'dtype', type(hidden))}")
    if weight.dim() != 2 or weight.size(1) != hidden.size(-1):
        raise ValueError(f"weight must have shape [V, d] with d = hidden's last dimension {hidden.size(-1)}, "
                         f"got {tuple(weight.shape)}")
    device_type = hidden.device.type
    if torch.is_autocast_enabled(device_type):  # what autocast's linear would do: both in its dtype
        dtype = torch.get_autocast_dtype(device_type)
        hidden, weight = hidden.to(dtype), weight.to(dtype)
        bias = None if bias is None else bias.to(dtype)
    if weight.dtype != hidden.dtype or (bias is not None and bias.dtype != hidden.dtype):
        raise TypeError(f"hidden ({hidden.dtype}), weight ({weight.dtype}) and bias "
                        f"({None if bias is None else bias.dtype}) must share a dtype")
    n_classes = weight.size(0)
    if bias is not None and tuple(bias.shape) != (n_classes,):
        raise ValueError(f"bias must have shape [V] = ({n_classes},), got {tuple(bias.shape)}")
    if chunk_rows is not None and int(chunk_rows) < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows!r}")
    flat_target, mask = flatten_target(target, hidden, ignore_index, method.validate_args, "hidden", k=n_classes)
    rows = mask.nonzero().squeeze(-1)
    flat_hidden = hidden.reshape(-1, hidden.size(-1))
    # the rows were checked here once; the chunks need no second look (and no sync each)
    validate, method.validate_args = method.validate_args, False
    try:
        with torch.autocast(device_type, enabled=False):
            loss, sums, ncorrect = _FusedLinearFn.apply(
                flat_hidden.index_select(0, rows), weight, bias, flat_target.index_select(0, rows), method,
                int(chunk_rows or fused_chunk_rows(n_classes)), *method.parameters())
    finally:
        method.validate_args = validate
    return LossParts(loss=loss, nll=sums[0], penalty=sums[1], ntokens=mask.sum(), ncorrect=ncorrect)


def fused_linear_loss(
    hidden: Tensor,
    weight: Tensor,
    target: Tensor,
    method: MethodLoss,
    *,
    bias: Tensor | None = None,
    ignore_index: int | None = IGNORE_INDEX,
    reduction: Reduction = "mean",
    chunk_rows: int | None = None,
) -> Tensor:
    """:func:`fused_linear_parts` reduced: ``"mean"`` over non-ignored positions or ``"sum"``.

    Example:
        >>> import torch
        >>> from labelreg_nlp import LabelSmoothingLoss
        >>> h, w, y = torch.randn(5, 3), torch.randn(7, 3), torch.tensor([0, 6, 2, 2, 1])
        >>> ours = fused_linear_loss(h, w, y, LabelSmoothingLoss(0.1))
        >>> torch.allclose(ours, torch.nn.functional.cross_entropy(h @ w.T, y, label_smoothing=0.1))
        True
    """
    check_reduction(reduction)
    if reduction == "none":
        raise ValueError("the fused output layer keeps no per-position losses: use reduction='mean' or 'sum'")
    return fused_linear_parts(hidden, weight, target, method, bias=bias, ignore_index=ignore_index,
                              chunk_rows=chunk_rows).reduce(reduction)
