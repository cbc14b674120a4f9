"""One loss object for every method, chosen by name: what adapters that take ``--method`` build.

``TokenLoss(method, alpha, ...)`` builds the method's module from the registry
(:data:`~labelreg_nlp.losses.registry.METHODS`), checks K, and divides the summed loss by a count
given from outside (Hugging Face's ``num_items_in_batch``) or by the batch's own positions.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .base import MethodLoss, ScheduledAlphaLoss
from .checks import check_alpha, check_inputs, check_logit_classes, check_num_classes
from .fused_linear import fused_linear_parts
from .parts import LossParts
from .registry import METHODS, check_choices, flat_options, get_method


class TokenLoss(nn.Module):
    """Label-regularized cross-entropy chosen by name, with ``ignore_index`` positions left out.

    Args:
        method: a name of :data:`~labelreg_nlp.losses.registry.METHODS` (``none``, ``ls``,
            ``maxsup``, ``ols``, ``lspp``, ``lls``).
        alpha: the weight of ``ls``, ``maxsup``, ``lspp`` and ``lls``, in [0, 1] (``lspp``:
            (0, 1), ``lls``: (0, 1]); unused by the others.
        alpha_end: with ``schedule_horizon``, alpha goes linearly from ``alpha`` to
            ``alpha_end`` over that many progress steps (MaxSup uses 0.1 -> 0.2).
        schedule_horizon: number of progress steps (epochs or updates) of the schedule; may be
            left ``None`` and set on the attribute before the first loss (the HF trainer does).
        num_classes: K; required by ``ols``, ``lspp`` and ``lls``, checked against the logits by
            every method.
        ignore_index: target value of positions that are left out (HF: -100).
        validate_args: check that every target is a class or ``ignore_index`` (one
            device-to-host sync per call); ``False`` skips it in training loops whose targets
            are known to be valid.
        **options: the methods' options under their flat names (``convention``,
            ``ols_hard_weight``, ``ols_topk``, ...; ``labelreg-nlp methods`` lists them); only
            the chosen method's are used.

    The method's module is :attr:`method_loss`, a submodule named after the method (``loss.ols``,
    so the state-dict keys are ``ols.*``). :meth:`from_options` takes a method's options dataclass
    instead of flat names.

    Example:
        >>> import torch
        >>> loss = TokenLoss("maxsup", 0.1)
        >>> logits, target = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
        >>> target[0, :2] = -100
        >>> from labelreg_nlp import maxsup_loss
        >>> torch.allclose(loss(logits, target), maxsup_loss(logits, target, 0.1, ignore_index=-100))
        True
        >>> loss
        TokenLoss(
          method='maxsup', ignore_index=-100
          (maxsup): MaxSupLoss(alpha=0.1)
        )
    """

    def __init__(
        self,
        method: str = "ls",
        alpha: float = 0.1,
        *,
        alpha_end: float | None = None,
        schedule_horizon: int | None = None,
        num_classes: int | None = None,
        ignore_index: int | None = -100,
        validate_args: bool = True,
        **options: Any,
    ) -> None:
        super().__init__()
        spec = get_method(method)
        known = flat_options()
        unknown = sorted(set(options) - set(known))
        if unknown:
            raise TypeError(f"TokenLoss got an unknown option {unknown[0]!r} (options: {sorted(known)})")
        check_alpha(alpha)
        if alpha_end is not None:
            check_alpha(alpha_end, "alpha_end")
        check_choices(options)  # every choice is checked, the chosen method's or not
        if num_classes is not None:
            check_num_classes(num_classes)
        self.method = spec.name
        self.ignore_index = ignore_index
        self.num_classes = None if num_classes is None else int(num_classes)
        options = spec.options_from_flat({**options, "alpha": alpha, "alpha_end": alpha_end})
        module = spec.build(options, self.num_classes, schedule_horizon)
        module.validate_args = bool(validate_args)
        self.add_module(spec.name, module)

    @classmethod
    def from_options(cls, options: Any, *, schedule_horizon: int | None = None, num_classes: int | None = None,
                     ignore_index: int | None = -100, validate_args: bool = True) -> TokenLoss:
        """The loss of the method whose options dataclass ``options`` is.

        Args:
            options: an options dataclass of a registered method (:class:`~labelreg_nlp.losses.maxsup.MaxSupOptions`, ...).
            schedule_horizon, num_classes, ignore_index, validate_args: as in :class:`TokenLoss`.

        Returns:
            A :class:`TokenLoss`.

        Example:
            >>> from labelreg_nlp.losses import OLSOptions
            >>> TokenLoss.from_options(OLSOptions(topk=8), num_classes=100).ols.topk
            8
        """
        spec = next((m for m in METHODS.values() if isinstance(options, m.options)), None)
        if spec is None:
            raise TypeError(f"{type(options).__name__} is the options dataclass of no registered method")
        flat = {spec.flat_name(f.name): getattr(options, f.name) for f in spec.fields}
        return cls(spec.name, flat.pop("alpha", 0.1), alpha_end=flat.pop("alpha_end", None),
                   schedule_horizon=schedule_horizon, num_classes=num_classes, ignore_index=ignore_index,
                   validate_args=validate_args, **flat)

    @property
    def method_loss(self) -> MethodLoss:
        """The method's module (also reachable as ``self.<method name>``)."""
        return self._modules[self.method]

    @property
    def alpha(self) -> float:
        """The weight at the current progress step (0 for methods without one)."""
        return float(getattr(self.method_loss, "alpha", 0.0))

    @property
    def alpha_end(self) -> float | None:
        module = self.method_loss
        return module.alpha_end if isinstance(module, ScheduledAlphaLoss) else None

    @property
    def schedule_horizon(self) -> int | None:
        module = self.method_loss
        return module.schedule_horizon if isinstance(module, ScheduledAlphaLoss) else None

    @schedule_horizon.setter
    def schedule_horizon(self, value: int | None) -> None:
        module = self.method_loss
        if isinstance(module, ScheduledAlphaLoss):
            module.schedule_horizon = value

    @property
    def progress(self) -> int:
        return getattr(self.method_loss, "progress", 0)

    def set_progress(self, step: int) -> None:
        """Set the 0-based epoch or update that the alpha schedule reads."""
        self.method_loss.set_progress(step)

    def end_period(self) -> None:
        """End a period of a stateful method (all-reduced under torch.distributed); no-op for others."""
        self.method_loss.end_period()

    def parts(self, logits: Tensor, target: Tensor, *, keep_per_position: bool = False) -> LossParts:
        """Summed loss terms over the positions whose target is not ``ignore_index``.

        Stateful methods accumulate only when this module is in training mode and autograd is on,
        so evaluation (no_grad) never changes their state.
        """
        check_inputs(logits, target)
        return self.prepared_method(logits).parts(logits, target, ignore_index=self.ignore_index,
                                                  keep_per_position=keep_per_position)

    def prepared_method(self, logits: Tensor | None = None, num_classes: int | None = None) -> MethodLoss:
        """The method's module after checking K (of ``logits``, or ``num_classes``) against the
        loss's, in training mode only when this module is and autograd is on (so evaluation never
        changes a stateful method's state)."""
        k = logits.size(-1) if logits is not None else num_classes
        if self.num_classes is not None and k is not None:
            check_logit_classes(k, self.num_classes, "the loss was set up for")
        module = self.method_loss
        module.train(self.training and torch.is_grad_enabled())
        return module

    def forward(self, logits: Tensor, target: Tensor, num_items: Tensor | int | None = None) -> Tensor:
        """The summed loss divided by ``num_items`` when given (HF's ``num_items_in_batch``:
        the non-ignored targets of the whole accumulated batch), else by this batch's
        non-ignored targets. A batch with none gives 0."""
        return _normalized(self.parts(logits, target), num_items)

    def fused_parts(self, hidden: Tensor, weight: Tensor, target: Tensor, bias: Tensor | None = None,
                    chunk_rows: int | None = None) -> LossParts:
        """:meth:`parts` of the logits ``hidden @ weight.T + bias`` without holding them (see
        :func:`~labelreg_nlp.losses.fused_linear.fused_linear_parts`); only ``loss`` is
        differentiable.

        Args:
            hidden: ``[..., d]``, the output layer's input.
            weight: ``[V, d]``, the output layer's weight (or the tied embedding's).
            target: ``[...]`` classes, ``ignore_index`` where left out.
            bias: ``[V]`` or ``None``.
            chunk_rows: rows per chunk of logits (default: about 16M logits per chunk).

        Returns:
            :class:`~labelreg_nlp.losses.parts.LossParts` (no per-position values).

        Example:
            >>> import torch
            >>> loss = TokenLoss("ls", 0.1)
            >>> h, w, y = torch.randn(2, 3, 8), torch.randn(50, 8), torch.tensor([[4, 9, -100], [0, 49, 7]])
            >>> torch.allclose(loss.fused(h, w, y), loss(h @ w.T, y))
            True
        """
        module = self.prepared_method(num_classes=weight.size(0))
        return fused_linear_parts(hidden, weight, target, module, bias=bias, ignore_index=self.ignore_index,
                                  chunk_rows=chunk_rows)

    def fused(self, hidden: Tensor, weight: Tensor, target: Tensor, num_items: Tensor | int | None = None,
              bias: Tensor | None = None, chunk_rows: int | None = None) -> Tensor:
        """:meth:`forward` of the logits ``hidden @ weight.T + bias``, computed by :meth:`fused_parts`."""
        return _normalized(self.fused_parts(hidden, weight, target, bias, chunk_rows), num_items)

    def log_values(self) -> dict[str, float]:
        """What the trainers add to a training log line: ``labelreg_alpha`` for methods with a
        weight, plus the method module's own values (OLS: ``ols_periods``, ``ols_self_mass``)."""
        out: dict[str, float] = {}
        if get_method(self.method).scheduled:
            out["labelreg_alpha"] = self.alpha
        out.update(self.method_loss.log_values())
        return out

    def extra_repr(self) -> str:
        return f"method={self.method!r}, ignore_index={self.ignore_index!r}"


def _normalized(parts: LossParts, num_items: Tensor | int | None) -> Tensor:
    """The summed loss over ``num_items`` (at least 1), or the mean over the batch's positions."""
    if num_items is None:
        return parts.reduce("mean")
    if torch.is_tensor(num_items):
        return parts.loss / num_items.to(parts.loss.device).clamp(min=1)
    return parts.loss / max(int(num_items), 1)
