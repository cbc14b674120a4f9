"""The strided-block max and top-k used for OLS accumulation against torch.max and torch.topk."""

import pytest
import torch

from labelreg_nlp.losses.logit_stats import _max_and_block_max, _topk_of_rows, logit_stats


@pytest.mark.parametrize("n_cols", [100, 2048, 2049, 10000, 10007])
@pytest.mark.parametrize("top", [1, 8, 64])
def test_topk_of_rows_equals_torch_topk(n_cols, top):
    gen = torch.Generator().manual_seed(n_cols + top)
    z = torch.randn(40, n_cols, generator=gen) * torch.rand(40, 1, generator=gen) * 5
    z[5, :] = 0.0  # a row of ties: any top-T of equal values is right
    rows = torch.tensor([0, 5, 7, 39])
    vals, idx = _topk_of_rows(z, rows, top)
    expected, _ = z[rows].topk(top, dim=-1)
    torch.testing.assert_close(vals.sort(-1, descending=True).values, expected, rtol=0, atol=0)
    torch.testing.assert_close(z[rows].gather(1, idx), vals, rtol=0, atol=0)
    assert all(len(set(r)) == top for r in idx.tolist())  # distinct classes


def test_logit_stats_top_only_for_rows_predicted_correctly():
    z = torch.randn(6, 5000)
    target = z.argmax(-1)
    target[[1, 4]] = (target[[1, 4]] + 1) % 5000  # rows 1 and 4 predicted wrongly
    stats = logit_stats(z, target, top=16)
    expected, _ = z.topk(16, dim=-1)
    for r in (0, 2, 3, 5):
        torch.testing.assert_close(stats.top_logit[r].sort(descending=True).values, expected[r], rtol=0, atol=0)
    assert stats.top_logit[[1, 4]].abs().sum() == 0 and stats.top_index[[1, 4]].sum() == 0


@pytest.mark.parametrize("n_cols", [32, 33, 1000, 10000, 10007])
@pytest.mark.parametrize("kind", ["normal", "ties", "nonfinite", "float64"])
def test_max_and_block_max_equals_torch_max(n_cols, kind):
    gen = torch.Generator().manual_seed(n_cols)
    z = torch.randn(30, n_cols, generator=gen)
    if kind == "ties":  # first arg-max among many equal maxima, also in the leftover columns
        z = torch.randint(0, 3, (30, n_cols), generator=gen).float()
        z[0, -1] = 5.0
        z[1, 3] = z[1, 3 + n_cols // 16] = 9.0  # twice in one strided block only
    if kind == "nonfinite":  # NaN wins wherever it is; +inf ties; a row of -inf
        z[1, 7] = z[1, -1] = z[2, -1] = float("nan")
        z[3] = float("-inf")
        z[4, 3] = z[4, -2] = float("inf")
        z[5] = float("nan")
    if kind == "float64":
        z = z.double()
    z_max, argmax, block_max = _max_and_block_max(z)
    expected_max, expected_arg = z.max(dim=-1)
    torch.testing.assert_close(z_max, expected_max, rtol=0, atol=0, equal_nan=True)
    assert torch.equal(argmax, expected_arg)
    n_blocks = n_cols // 16
    strided = z[:, : n_blocks * 16].view(30, 16, n_blocks).amax(dim=1)
    torch.testing.assert_close(block_max, strided, rtol=0, atol=0, equal_nan=True)
