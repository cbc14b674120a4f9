"""Checks of a loss's inputs and options, each raising one error that names the bad value (as the
caller spells it)."""

from __future__ import annotations

from typing import Any, Literal

import torch

Reduction = Literal["mean", "sum", "none"]
REDUCTIONS: tuple[str, ...] = ("mean", "sum", "none")


def check_alpha(alpha: float, name: str = "alpha", interval: str = "[0, 1]", why: str = "") -> float:
    """Return ``alpha`` as a float, or raise ``ValueError`` naming it if outside ``interval``.

    Args:
        alpha: a number (a Python, NumPy or one-element torch scalar).
        name: how the error names it (``"--maxsup-alpha"``).
        interval: ``"[0, 1]"``, ``"(0, 1]"`` or ``"(0, 1)"``.
        why: added to the error after the interval (``"for LS++ (log t is infinite ...)"``).

    Example:
        >>> check_alpha(0.1)
        0.1
        >>> check_alpha(1.5, "--maxsup-alpha")
        Traceback (most recent call last):
        ...
        ValueError: --maxsup-alpha must be in [0, 1], got 1.5
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) and not (
            torch.is_tensor(alpha) and alpha.numel() == 1 and not alpha.requires_grad):
        if type(alpha).__module__ == "numpy" and getattr(alpha, "size", 2) == 1:
            alpha = alpha.item()
        else:
            raise TypeError(f"{name} must be a number in {interval}, got {type(alpha).__name__} {alpha!r}")
    value = float(alpha)
    low_ok = value > 0.0 if interval.startswith("(") else value >= 0.0
    high_ok = value < 1.0 if interval.endswith(")") else value <= 1.0
    if not (low_ok and high_ok):  # also rejects NaN
        raise ValueError(f"{name} must be in {interval}{' ' + why if why else ''}, got {alpha!r}")
    return value


def check_inputs(logits: object, target: object) -> None:
    """:func:`check_tensor` of both arguments of a loss, before anything reads them."""
    check_tensor(logits, "logits")
    check_tensor(target, "target")


def check_tensor(value: object, name: str) -> None:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is a ``torch.Tensor``; a numpy array is
    told how to convert.

    Example:
        >>> import numpy as np
        >>> check_tensor(np.zeros(3), "logits")
        Traceback (most recent call last):
        ...
        TypeError: logits must be a torch.Tensor, got numpy.ndarray (convert it with torch.from_numpy)
    """
    if torch.is_tensor(value):
        return
    kind = type(value)
    hint = " (convert it with torch.from_numpy)" if kind.__module__ == "numpy" else ""
    qualified = kind.__name__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__name__}"
    raise TypeError(f"{name} must be a torch.Tensor, got {qualified}{hint}")


def check_reduction(reduction: str) -> None:
    """Raise ``ValueError`` naming ``reduction`` unless it is one of :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_weight(value: float, name: str) -> float:
    """``value`` as a float, or ``ValueError`` naming it unless finite and >= 0."""
    value = float(value)
    if not (value >= 0.0 and value != float("inf")):  # rejects negative, NaN and inf
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> str:
    """``value`` if it is one of ``choices``, else ``ValueError`` naming ``name``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_num_classes(num_classes: Any, name: str = "num_classes") -> int:
    """``num_classes`` as an int, or ``ValueError`` naming it unless >= 2.

    Example:
        >>> check_num_classes(1)
        Traceback (most recent call last):
        ...
        ValueError: num_classes must be >= 2, got 1
    """
    if int(num_classes) < 2:
        raise ValueError(f"{name} must be >= 2, got {num_classes!r}")
    return int(num_classes)


def check_logit_classes(got: int, expected: int, what: str) -> None:
    """``ValueError`` unless the logits' class count ``got`` is the ``expected`` K of ``what``
    (``"the loss was set up for"``, ``"this OLS state has"``).

    Example:
        >>> check_logit_classes(11, 12, "the loss was set up for")
        Traceback (most recent call last):
        ...
        ValueError: logits have 11 classes, the loss was set up for num_classes=12
    """
    if got != expected:
        raise ValueError(f"logits have {got} classes, {what} num_classes={expected}")
