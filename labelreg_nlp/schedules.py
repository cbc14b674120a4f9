"""Alpha schedules: a function of a 0-based step (epoch or update) returning the weight.

MaxSup Appendix E (``shared/papers/000_8081c041bc3a65ca.txt``) grows alpha linearly over
training, 0.1 -> 0.2; the authors' code uses ``a_t = a0 + (a1 - a0) * t / max(1, T - 1)`` with a
0-based epoch ``t`` of ``T``, so the last epoch trains with ``a1``. :class:`LinearSchedule` does
exactly that and holds ``a1`` after the horizon.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from .functional import check_alpha

ScheduleUnit = Literal["epoch", "update"]
SCHEDULE_UNITS = ("epoch", "update")


class AlphaSchedule(Protocol):
    def __call__(self, step: int) -> float: ...


@dataclass(frozen=True)
class ConstantSchedule:
    alpha: float

    def __post_init__(self) -> None:
        check_alpha(self.alpha)

    def __call__(self, step: int) -> float:
        return self.alpha


@dataclass(frozen=True)
class LinearSchedule:
    """``start + (end - start) * min(step, total - 1) / max(1, total - 1)`` for 0-based steps."""

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
    """Constant ``alpha`` when ``alpha_end`` is None (or equal), else linear over ``total`` steps."""
    if alpha_end is None or float(alpha_end) == float(alpha):
        return ConstantSchedule(check_alpha(alpha))
    if not total:
        raise ValueError(
            f"alpha_end={alpha_end!r} needs a schedule horizon (number of epochs or updates), got {total!r}"
        )
    return LinearSchedule(float(alpha), float(alpha_end), int(total))
