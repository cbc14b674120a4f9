"""Alpha schedules: a function of a 0-based step (epoch or update) returning the weight.

The MaxSup authors grow alpha linearly over training, 0.1 -> 0.2 (MaxSup paper, Appendix E),
with ``a_t = a0 + (a1 - a0) * t / max(1, T - 1)`` for a 0-based epoch ``t`` of ``T``, so the
last epoch trains with ``a1``. :class:`LinearSchedule` does exactly that and holds ``a1`` after
the horizon. What a step is (an epoch, an update, an optimizer step) is the adapter's choice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .checks import check_alpha


class AlphaSchedule(Protocol):
    def __call__(self, step: int) -> float: ...


@dataclass(frozen=True)
class ConstantSchedule:
    """``alpha`` at every step.

    Example:
        >>> ConstantSchedule(0.1)(7)
        0.1
    """

    alpha: float

    def __post_init__(self) -> None:
        check_alpha(self.alpha)

    def __call__(self, step: int) -> float:
        return self.alpha


@dataclass(frozen=True)
class LinearSchedule:
    """``start + (end - start) * min(step, total - 1) / max(1, total - 1)`` for 0-based steps.

    Args:
        start: alpha at step 0, in [0, 1].
        end: alpha at step ``total - 1`` and after, in [0, 1].
        total: number of steps of the schedule, >= 1.

    Example:
        >>> schedule = LinearSchedule(0.1, 0.2, total=3)
        >>> [round(schedule(t), 3) for t in range(4)]
        [0.1, 0.15, 0.2, 0.2]
    """

    start: float
    end: float
    total: int

    def __post_init__(self) -> None:
        check_alpha(self.start, "alpha")
        check_alpha(self.end, "alpha_end")
        if int(self.total) < 1:
            raise ValueError(f"a linear alpha schedule needs a horizon >= 1 step, got total={self.total!r}")

    def __call__(self, step: int) -> float:
        t = min(max(int(step), 0), self.total - 1)
        return self.start + (self.end - self.start) * t / max(1, self.total - 1)


def make_schedule(alpha: float, alpha_end: float | None = None, total: int | None = None) -> AlphaSchedule:
    """Constant ``alpha`` when ``alpha_end`` is None (or equal), else linear over ``total`` steps.

    Args:
        alpha: the weight at step 0.
        alpha_end: the weight at the last step, or ``None`` for a constant.
        total: number of steps; required when the schedule is linear.

    Returns:
        A :class:`ConstantSchedule` or a :class:`LinearSchedule`.

    Example:
        >>> make_schedule(0.1, 0.2, total=300)(299)
        0.2
    """
    if alpha_end is None or float(alpha_end) == float(alpha):
        return ConstantSchedule(check_alpha(alpha))
    if not total:
        raise ValueError(
            f"alpha_end={alpha_end!r} needs a schedule horizon (number of epochs or updates), got {total!r}"
        )
    return LinearSchedule(float(alpha), float(alpha_end), int(total))
