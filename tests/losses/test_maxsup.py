"""MaxSup against the MaxSup paper: Lemma 3.2, Theorem 3.3 (with Mixup), Algorithm 1, Appendix C."""

import pytest
import torch
import torch.nn.functional as F

from labelreg_nlp import label_smoothing_loss, label_smoothing_parts, maxsup_loss

from .batches import IGNORE, batch, grad


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
