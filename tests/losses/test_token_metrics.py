"""token_metrics / fused_token_metrics against the float64 formulas."""

from __future__ import annotations

import math

import pytest
import torch

from labelreg_nlp.losses.token_metrics import fused_token_metrics, token_metrics


def reference(logits: torch.Tensor, target: torch.Tensor) -> tuple[float, int, int]:
    keep = target != -100
    z, t = logits[keep].double(), target[keep]
    log_p = torch.log_softmax(z, dim=-1)
    p = log_p.exp()
    entropy = -torch.where(p > 0, p * log_p, torch.zeros((), dtype=torch.float64)).sum()
    return float(entropy), int((z.argmax(-1) == t).sum()), int(keep.sum())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_sums_equal_the_formulas_with_padding_ties_and_masked_classes(dtype, monkeypatch):
    from labelreg_nlp.losses import logit_stats

    monkeypatch.setattr(logit_stats, "CHUNK_ELEMENTS", 3 * 50)  # several chunks
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 7, 50, generator=gen) * 3
    logits[0, 0, 10:20] = -math.inf  # masked classes
    logits[1, 1, [3, 30]] = 20.0  # a tie: the first arg-max counts
    target = torch.randint(0, 50, (4, 7), generator=gen)
    target[1, 1] = 3
    target[2] = -100
    logits = logits.to(dtype)
    got = token_metrics(logits, target)
    entropy, correct, count = reference(logits.float() if dtype == torch.bfloat16 else logits, target)
    assert int(got.count) == count == 21 and int(got.correct) == correct >= 1
    assert float(got.entropy) == pytest.approx(entropy, rel=1e-5)


def test_fused_equals_the_logits_and_all_padding_is_zero():
    gen = torch.Generator().manual_seed(1)
    hidden, weight, bias = torch.randn(3, 5, 8, generator=gen), torch.randn(40, 8, generator=gen), torch.randn(40)
    target = torch.randint(0, 40, (3, 5), generator=gen)
    target[0, :2] = -100
    plain = token_metrics(hidden @ weight.T + bias, target)
    fused = fused_token_metrics(hidden, weight, target, bias=bias)
    torch.testing.assert_close(fused.entropy, plain.entropy)
    assert int(fused.correct) == int(plain.correct) and int(fused.count) == int(plain.count) == 13
    empty = token_metrics(torch.randn(2, 3, 5), torch.full((2, 3), -100))
    assert float(empty.entropy) == 0.0 and int(empty.correct) == 0 and int(empty.count) == 0
