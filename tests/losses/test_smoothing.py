"""Label smoothing against its peers: torch, Hugging Face's LabelSmoother, fairseq."""

import pytest
import torch
import torch.nn.functional as F

from labelreg_nlp import label_smoothing_loss, label_smoothing_parts

from .batches import IGNORE, batch, grad


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
