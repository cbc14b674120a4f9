"""Core LS / MaxSup math against torch, HF and fairseq, and against the MaxSup paper."""

import pytest
import torch
import torch.nn.functional as F

from labelreg_nlp import label_smoothing_loss, label_smoothing_parts, maxsup_loss, maxsup_parts
from labelreg_nlp import logit_stats as logit_stats_module

IGNORE = -100


def batch(b=4, t=7, k=11, seed=0, dtype=torch.float32, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, t, k, generator=g) * scale).to(dtype)
    target = torch.randint(0, k, (b, t), generator=g)
    target[0, 4:] = IGNORE  # uneven padding
    target[2, 1:] = IGNORE
    return logits.requires_grad_(), target


def grad(loss, x):
    (g,) = torch.autograd.grad(loss, x)
    return g


# ---------------------------------------------------------------- peers: torch, HF, fairseq
@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.37, 1.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_uniform_matches_torch_cross_entropy(alpha, reduction):
    logits, target = batch()
    ours = label_smoothing_loss(logits, target, alpha, ignore_index=IGNORE, reduction=reduction)
    ref = F.cross_entropy(logits.transpose(1, 2), target, label_smoothing=alpha, ignore_index=IGNORE,
                          reduction=reduction)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad(ours.sum(), logits), grad(ref.sum(), logits), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("shift", [False, True])
def test_uniform_matches_hf_label_smoother(shift):
    from transformers.trainer_pt_utils import LabelSmoother

    logits, target = batch(seed=3)
    ref = LabelSmoother(epsilon=0.1, ignore_index=IGNORE)({"logits": logits}, target, shift_labels=shift)
    if shift:
        ours = label_smoothing_loss(logits[:, :-1], target[:, 1:], 0.1, ignore_index=IGNORE)
    else:
        ours = label_smoothing_loss(logits, target, 0.1, ignore_index=IGNORE)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad(ours, logits), grad(ref, logits), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("alpha", [0.0, 0.1, 0.3])
def test_fairseq_convention_matches_fairseq_label_smoothed_nll_loss(alpha):
    from fairseq.criterions.label_smoothed_cross_entropy import label_smoothed_nll_loss

    pad = 1
    logits, target = batch(seed=5)
    target = target.masked_fill(target == IGNORE, pad)
    lprobs = F.log_softmax(logits.float(), dim=-1).view(-1, logits.size(-1))
    ref_loss, ref_nll = label_smoothed_nll_loss(lprobs, target.view(-1), alpha, ignore_index=pad)
    parts = label_smoothing_parts(logits, target, alpha, ignore_index=pad, convention="fairseq")
    torch.testing.assert_close(parts.loss, ref_loss, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(parts.nll, ref_nll, rtol=1e-6, atol=1e-5)
    torch.testing.assert_close(grad(parts.loss, logits), grad(ref_loss, logits), rtol=1e-5, atol=1e-6)
    # unreduced: fairseq keeps zeros at padding
    ref_none, _ = label_smoothed_nll_loss(lprobs, target.view(-1), alpha, ignore_index=pad, reduce=False)
    ours_none = label_smoothing_loss(logits, target, alpha, ignore_index=pad, convention="fairseq", reduction="none")
    torch.testing.assert_close(ours_none.view(-1), ref_none.view(-1), rtol=1e-6, atol=1e-5)


# ---------------------------------------------------------------- the MaxSup paper
def soft_label_ce(logits, soft):
    return -(soft * F.log_softmax(logits, -1)).sum(-1)


def test_lemma_3_2_and_theorem_3_3():
    """H(s,q) = H(y,q) + L_LS and L_LS = alpha (z_gt - mean z), per sample, in float64."""
    k, alpha = 9, 0.2
    logits = torch.randn(50, k, dtype=torch.float64) * 4
    target = torch.randint(0, k, (50,))
    y = F.one_hot(target, k).double()
    s = (1 - alpha) * y + alpha / k
    h_s, h_y = soft_label_ce(logits, s), soft_label_ce(logits, y)
    l_ls = alpha * (soft_label_ce(logits, torch.full_like(s, 1 / k)) - h_y)  # Eq. 3
    torch.testing.assert_close(h_s, h_y + l_ls)  # Eq. 2
    torch.testing.assert_close(l_ls, alpha * (logits.gather(1, target[:, None])[:, 0] - logits.mean(-1)))  # Eq. 4
    parts = label_smoothing_parts(logits, target, alpha, keep_per_position=True)
    torch.testing.assert_close(parts.per_position, h_s)
    torch.testing.assert_close(parts.nll, h_y.sum())
    torch.testing.assert_close(alpha * parts.penalty, l_ls.sum())


def test_theorem_3_3_with_mixup():
    """Eq. 5: with mixed targets the LS term is alpha (lam z_gt1 + (1-lam) z_gt2 - mean z)."""
    k, alpha, lam = 7, 0.1, 0.3
    logits = torch.randn(20, k, dtype=torch.float64)
    t1, t2 = torch.randint(0, k, (20,)), torch.randint(0, k, (20,))
    mixed = lam * F.one_hot(t1, k).double() + (1 - lam) * F.one_hot(t2, k).double()
    smoothed = (1 - alpha) * mixed + alpha / k
    l_ls = soft_label_ce(logits, smoothed) - soft_label_ce(logits, mixed)
    z = logits.gather(1, torch.stack([t1, t2], 1))
    torch.testing.assert_close(l_ls, alpha * (lam * z[:, 0] + (1 - lam) * z[:, 1] - logits.mean(-1)))
    # and our soft-target MaxSup: CE(mixed) + alpha (z_max - mean z)
    ours = maxsup_loss(logits, mixed, alpha, reduction="none")
    torch.testing.assert_close(ours, soft_label_ce(logits, mixed) + alpha * (logits.max(-1).values - logits.mean(-1)))


def test_maxsup_matches_algorithm_1_with_autograd():
    logits, target = batch(seed=7, dtype=torch.float64)
    alpha = 0.15
    mask = target != IGNORE
    ce = F.cross_entropy(logits.transpose(1, 2), target, ignore_index=IGNORE, reduction="none")
    ref = ((ce + alpha * (logits.max(-1).values - logits.mean(-1))) * mask).sum() / mask.sum()
    ours = maxsup_loss(logits, target, alpha, ignore_index=IGNORE)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad(ours, logits), grad(ref, logits))
    assert torch.autograd.gradcheck(lambda x: maxsup_loss(x, target, alpha, ignore_index=IGNORE), (logits,))


@pytest.mark.parametrize("correct", [True, False])
def test_appendix_c_gradients(correct):
    """Appendix C.2: dL/dz_i = q_i - y_i - alpha/K + alpha 1[i = argmax q]."""
    k, alpha = 6, 0.2
    logits = torch.tensor([[0.3, 2.5, -1.0, 0.7, 1.1, -0.4]], dtype=torch.float64, requires_grad=True)
    gt = 1 if correct else 4  # argmax is class 1
    target = torch.tensor([gt])
    g = grad(maxsup_loss(logits, target, alpha, reduction="sum"), logits)[0]
    q = torch.softmax(logits.detach(), -1)[0]
    if correct:
        expected = q - alpha / k
        expected[gt] = q[gt] - (1 - alpha * (1 - 1 / k))
    else:
        expected = q - alpha / k
        expected[gt] = q[gt] - (1 + alpha / k)
        expected[1] = q[1] + alpha * (1 - 1 / k)
    torch.testing.assert_close(g, expected)
    if correct:  # "In this case, Max Suppression is equivalent to Label Smoothing"
        g_ls = grad(label_smoothing_loss(logits, target, alpha, reduction="sum"), logits)[0]
        torch.testing.assert_close(g, g_ls)


# ---------------------------------------------------------------- parts, dtypes, chunks
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
    with pytest.raises(ValueError, match="ignore_index applies to integer targets"):
        maxsup_loss(logits, torch.rand_like(logits), 0.1, ignore_index=IGNORE)
