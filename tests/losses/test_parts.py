"""What every loss shares: LossParts counts, float32 math for half logits, chunking, padding,
errors that name the bad value."""

import pytest
import torch
import torch.nn.functional as F

import labelreg_nlp.losses.logit_stats as logit_stats_module
from labelreg_nlp import label_smoothing_loss, maxsup_loss, maxsup_parts

from .batches import IGNORE, batch, grad


def test_parts_counts_and_identity():
    logits, target = batch(seed=11)
    parts = maxsup_parts(logits, target, 0.1, ignore_index=IGNORE)
    mask = target != IGNORE
    assert int(parts.ntokens) == int(mask.sum())
    assert int(parts.ncorrect) == int(((logits.argmax(-1) == target) & mask).sum())
    torch.testing.assert_close(parts.loss, parts.nll + 0.1 * parts.penalty)
    nll = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE, reduction="sum")
    torch.testing.assert_close(parts.nll, nll)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_logits_computed_in_float32(dtype):
    logits, target = batch(seed=13, dtype=dtype)
    ref_logits = logits.detach().float().requires_grad_()
    for fn in (lambda x: maxsup_loss(x, target, 0.1, ignore_index=IGNORE),
               lambda x: label_smoothing_loss(x, target, 0.1, ignore_index=IGNORE)):
        ours, ref = fn(logits), fn(ref_logits)
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, ref, rtol=0, atol=0)  # same float32 math on the same values
        g = grad(ours, logits)
        assert g.dtype == dtype
        torch.testing.assert_close(g.float(), grad(ref, ref_logits), rtol=1e-2, atol=1e-4)


def test_chunked_equals_unchunked(monkeypatch):
    logits, target = batch(b=5, t=9, k=13, seed=17)
    full = maxsup_loss(logits, target, 0.2, ignore_index=IGNORE)
    g_full = grad(full, logits)
    monkeypatch.setattr(logit_stats_module, "CHUNK_ELEMENTS", 13 * 4)  # 4 rows per chunk
    chunked = maxsup_loss(logits, target, 0.2, ignore_index=IGNORE)
    torch.testing.assert_close(chunked, full, rtol=0, atol=0)
    torch.testing.assert_close(grad(chunked, logits), g_full, rtol=0, atol=0)


# ---------------------------------------------------------------- padding and bad input
@pytest.mark.parametrize("fn", [maxsup_loss, label_smoothing_loss])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored_batch_is_exactly_zero(fn, reduction):
    logits = torch.randn(3, 4, 8, requires_grad=True)
    target = torch.full((3, 4), IGNORE)
    loss = fn(logits, target, 0.1, ignore_index=IGNORE, reduction=reduction)
    assert torch.all(loss == 0)
    g = grad(loss.sum(), logits)
    assert torch.all(g == 0)


def test_ignored_positions_get_no_gradient_even_if_their_logits_are_nan():
    logits, target = batch(seed=19)
    with torch.no_grad():
        logits[target == IGNORE] = float("nan")
    loss = maxsup_loss(logits, target, 0.1, ignore_index=IGNORE)
    assert torch.isfinite(loss)
    g = grad(loss, logits)
    assert torch.all(g[target == IGNORE] == 0) and torch.isfinite(g).all()


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
@pytest.mark.parametrize("fn", [maxsup_loss, label_smoothing_loss])
def test_alpha_out_of_range(fn, alpha):
    logits, target = batch()
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 1\], got"):
        fn(logits, target, alpha, ignore_index=IGNORE)


@pytest.mark.parametrize("bad", [11, -3, 999])
@pytest.mark.parametrize("fn", [maxsup_loss, label_smoothing_loss])
def test_target_outside_vocabulary_names_the_value(fn, bad):
    logits, target = batch(k=11)
    target[1, 2] = bad
    with pytest.raises(ValueError, match=rf"target value {bad} is outside \[0, 11\)"):
        fn(logits, target, 0.1, ignore_index=IGNORE)


def test_ignore_index_inside_vocabulary_is_masked_not_an_error():
    logits, target = batch(k=11)
    target[target == IGNORE] = 1  # e.g. fairseq's padding_idx
    loss = maxsup_loss(logits, target, 0.1, ignore_index=1)
    mask = target != 1
    ref = maxsup_loss(logits[mask], target[mask], 0.1)
    torch.testing.assert_close(loss, ref)


def test_shape_mismatch_and_bad_arguments():
    logits, target = batch()
    with pytest.raises(ValueError, match="does not match logits shape"):
        maxsup_loss(logits, target[:, :-1], 0.1)
    with pytest.raises(TypeError, match="integer class indices"):
        label_smoothing_loss(logits, target.bool(), 0.1)
    with pytest.raises(ValueError, match="reduction must be one of"):
        maxsup_loss(logits, target, 0.1, ignore_index=IGNORE, reduction="avg")
    with pytest.raises(ValueError, match="convention must be one of"):
        label_smoothing_loss(logits, target, 0.1, ignore_index=IGNORE, convention="timm")
    with pytest.raises(ValueError, match="soft target shape"):
        maxsup_loss(logits, torch.rand(4, 7, 3), 0.1)
    soft = torch.rand_like(logits)  # soft targets have no ignored positions (torch's cross_entropy alike)
    assert torch.equal(maxsup_loss(logits, soft, 0.1, ignore_index=IGNORE), maxsup_loss(logits, soft, 0.1, ignore_index=None))


def test_ignore_index_defaults_to_torchs():
    """-100 by default, as torch's losses: a batch padded the torch way needs no argument."""

    from labelreg_nlp import LabelSmoothingLoss, MaxSupLoss

    logits, target = batch()
    flat_logits, flat_target = logits.reshape(-1, logits.size(-1)), target.reshape(-1)
    torch.testing.assert_close(label_smoothing_loss(logits, target, 0.1),
                               F.cross_entropy(flat_logits, flat_target, label_smoothing=0.1))
    torch.testing.assert_close(maxsup_loss(logits, target, 0.0), F.cross_entropy(flat_logits, flat_target))
    torch.testing.assert_close(LabelSmoothingLoss(0.1)(logits, target), label_smoothing_loss(logits, target, 0.1))
    torch.testing.assert_close(MaxSupLoss(0.1)(logits, target), maxsup_loss(logits, target, 0.1))
    with pytest.raises(ValueError, match="target value -100 is outside"):
        label_smoothing_loss(logits, target, 0.1, ignore_index=None)
