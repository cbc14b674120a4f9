"""The strided-block top-k used for OLS accumulation against torch.topk."""

import pytest
import torch

from labelreg_nlp.logit_stats import _topk_of_rows, logit_stats


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
