"""TokenLoss: the by-name dispatch equals the functional losses it wraps."""

import pytest
import torch

from labelreg_nlp import label_smoothing_loss, maxsup_loss
from labelreg_nlp.losses.online import OnlineLabelSmoothing
from labelreg_nlp.losses.token_loss import TokenLoss


def _batch():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 11, generator=gen)
    target = torch.randint(0, 11, (3, 5), generator=gen)
    target[0, :2] = -100
    return logits, target


def test_each_method_equals_its_functional_loss():
    logits, target = _batch()
    expected = {
        "none": torch.nn.functional.cross_entropy(logits.reshape(-1, 11), target.reshape(-1)),
        "ls": label_smoothing_loss(logits, target, 0.2, ignore_index=-100),
        "maxsup": maxsup_loss(logits, target, 0.2, ignore_index=-100),
        "ols": OnlineLabelSmoothing(11)(logits, target, ignore_index=-100),
    }
    for method, value in expected.items():
        loss = TokenLoss(method, 0.2, num_classes=11)
        torch.testing.assert_close(loss(logits, target), value, rtol=1e-6, atol=1e-7)
        # divided by a count given from outside (HF's num_items_in_batch)
        summed = loss.parts(logits, target).loss
        torch.testing.assert_close(loss(logits, target, num_items=torch.tensor(40)), summed / 40)
        torch.testing.assert_close(loss(logits, target, num_items=40), summed / 40)


def test_schedule_follows_progress_and_needs_a_horizon():
    loss = TokenLoss("maxsup", 0.1, alpha_end=0.2)
    with pytest.raises(ValueError, match="needs a schedule horizon"):
        _ = loss.alpha
    loss.schedule_horizon = 3
    assert [(loss.set_progress(t), loss.alpha)[1] for t in range(4)] == pytest.approx([0.1, 0.15, 0.2, 0.2])


def test_ols_accumulates_only_in_training_with_autograd():
    logits, target = _batch()
    loss = TokenLoss("ols", num_classes=11)
    loss.eval()
    loss(logits, target)
    assert loss.ols.count.sum() == 0
    loss.train()
    with torch.no_grad():
        loss(logits, target)
    assert loss.ols.count.sum() == 0
    loss(logits, target)
    assert loss.ols.count.sum() == (logits.argmax(-1) == target).sum()


def test_bad_arguments_name_the_value():
    with pytest.raises(ValueError, match="method must be one of .* got 'focal'"):
        TokenLoss("focal")
    with pytest.raises(ValueError, match="method 'ols' needs num_classes"):
        TokenLoss("ols")
    with pytest.raises(ValueError, match=r"alpha_end must be in \[0, 1\], got -0.1"):
        TokenLoss("maxsup", 0.1, alpha_end=-0.1)
    with pytest.raises(ValueError, match="logits have 11 classes, the loss was set up for num_classes=12"):
        TokenLoss("ls", num_classes=12)(*_batch())
