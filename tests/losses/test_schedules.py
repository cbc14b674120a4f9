import pytest

from labelreg_nlp import ConstantSchedule, LinearSchedule, make_schedule


def test_linear_schedule_is_the_authors_formula():
    """MaxSup code: lam = 0.1 + 0.1 * epoch / max(1, total_epochs - 1), 0-based epoch."""
    total = 300
    s = make_schedule(0.1, 0.2, total)
    for epoch in (0, 1, 150, 298, 299):
        assert s(epoch) == pytest.approx(0.1 + 0.1 * epoch / max(1, total - 1), abs=1e-12)
    assert s(0) == 0.1 and s(total - 1) == pytest.approx(0.2)
    assert s(10_000) == pytest.approx(0.2)  # held after the horizon
    assert LinearSchedule(0.3, 0.0, 4)(2) == pytest.approx(0.1)  # decreasing works too
    assert make_schedule(0.1, 0.9, 1)(0) == 0.1  # one-step horizon: start value


def test_constant_schedule():
    assert isinstance(make_schedule(0.1), ConstantSchedule)
    assert isinstance(make_schedule(0.1, 0.1), ConstantSchedule)
    assert make_schedule(0.25)(123) == 0.25


@pytest.mark.parametrize(
    "args, match",
    [((1.2,), r"alpha must be in \[0, 1\], got 1.2"),
     ((0.1, 1.2, 10), r"alpha_end must be in \[0, 1\], got 1.2"),
     ((0.1, 0.2, 0), r"alpha_end=0.2 needs a schedule horizon"),
     ((0.1, 0.2, None), r"needs a schedule horizon")],
)
def test_schedule_errors(args, match):
    with pytest.raises(ValueError, match=match):
        make_schedule(*args)
    with pytest.raises(ValueError, match="horizon >= 1"):
        LinearSchedule(0.1, 0.2, 0)
