"""The image-side adapters: each equals the core, soft targets reduce to hard ones, and the
drop-in names equal timm's formulas (copied here: timm cannot be installed beside the CPU torch)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from labelreg_nlp import TokenLoss
from labelreg_nlp.experiments.mixup import MixConfig, mix_batch, one_hot
from labelreg_nlp.integrations.vision import ClassificationLoss, LabelSmoothingCrossEntropy, SoftTargetCrossEntropy
from labelreg_nlp.losses.registry import METHODS, get_method

K = 7
METHOD_NAMES = tuple(METHODS)


def rows(n=12, k=K, seed=0, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, k, generator=g) * scale).requires_grad_(), torch.randint(0, k, (n,), generator=g)


def mixed(target, k=K, lam=0.7):
    t = one_hot(target, k)
    return lam * t + (1 - lam) * t.flip(0)


def make(method, alpha=0.1):
    alpha = 0.0 if method == "none" else alpha
    return ClassificationLoss(method, alpha, num_classes=K).train()


def grads(loss, *xs):
    return torch.autograd.grad(loss, xs)


# ---------------------------------------------------------------- timm formulas, written here
def timm_label_smoothing_ce(x, target, smoothing):
    logprobs = F.log_softmax(x, dim=-1)
    nll = -logprobs.gather(dim=-1, index=target.unsqueeze(1)).squeeze(1)
    smooth = -logprobs.mean(dim=-1)
    return ((1.0 - smoothing) * nll + smoothing * smooth).mean()


def timm_soft_target_ce(x, target):
    return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()


def timm_mixup_target(target, num_classes, lam, smoothing):
    off = smoothing / num_classes
    on = 1.0 - smoothing + off
    y1 = torch.full((target.numel(), num_classes), off).scatter_(1, target[:, None], on)
    y2 = torch.full((target.numel(), num_classes), off).scatter_(1, target.flip(0)[:, None], on)
    return y1 * lam + y2 * (1.0 - lam)


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_label_smoothing_ce_equals_timm(smoothing):
    x, y = rows()
    ours, theirs = LabelSmoothingCrossEntropy(smoothing)(x, y), timm_label_smoothing_ce(x, y, smoothing)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads(ours, x)[0], grads(theirs, x)[0], rtol=1e-5, atol=1e-7)


def test_soft_target_ce_equals_timm_on_mixup_targets():
    x, y = rows()
    t = timm_mixup_target(y, K, 0.65, 0.0)
    ours, theirs = SoftTargetCrossEntropy()(x, t), timm_soft_target_ce(x, t)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads(ours, x)[0], grads(theirs, x)[0], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("lam", [1.0, 0.65])
def test_ls_on_mixup_targets_equals_timm_mixup_with_smoothing(lam):
    """timm folds smoothing into the Mixup target then uses SoftTargetCrossEntropy; our LS smooths
    the plain mixed target itself: the same loss and gradient."""
    x, y = rows(seed=3)
    ours = ClassificationLoss("ls", 0.1)(x, mixed(y, lam=lam))
    theirs = timm_soft_target_ce(x, timm_mixup_target(y, K, lam, 0.1))
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads(ours, x)[0], grads(theirs, x)[0], rtol=1e-5, atol=1e-7)


def test_maxsup_soft_targets_follow_eq5():
    x, y = rows(seed=4)
    t = mixed(y, lam=0.6)
    ours = ClassificationLoss("maxsup", 0.2)(x, t)
    ref = (torch.sum(-t * F.log_softmax(x, -1), -1) + 0.2 * (x.max(-1).values - x.mean(-1))).mean()
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grads(ours, x)[0], grads(ref, x)[0], rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------- adapters = core
@pytest.mark.parametrize("method", METHOD_NAMES)
def test_adapter_equals_the_core_module(method):
    """Hard targets: the registry's module called directly, loss and gradients (logits and, for
    the learned methods, their tables)."""
    x, y = rows(seed=5)
    ours = make(method)
    spec = get_method(method)
    core = spec.build(spec.options(**({"alpha": 0.1} if spec.has_alpha else {})), K).train()
    a, b = ours(x, y), core(x, y)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    pa, pb = list(ours.parameters()), list(core.parameters())
    for ga, gb in zip(grads(a, x, *pa), grads(b, x, *pb)):
        torch.testing.assert_close(ga, gb, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_one_hot_soft_targets_equal_class_indices(method):
    x, y = rows(seed=6)
    hard, soft = make(method), make(method)
    a, b = hard(x, y), soft(x, one_hot(y, K))
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    pa, pb = list(hard.parameters()), list(soft.parameters())
    for ga, gb in zip(grads(a, x, *pa), grads(b, x, *pb)):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)
    hard.end_period(), soft.end_period()
    torch.testing.assert_close(hard.state_dict(), soft.state_dict())


@pytest.mark.parametrize("method", METHOD_NAMES)
def test_soft_targets_average_the_per_class_loss(method):
    """Every method: a Mixup row's loss is lam * loss(y_a) + (1 - lam) * loss(y_b), gradients too."""
    x, y = rows(seed=7)
    lam = 0.7
    module = make(method).eval()  # no OLS accumulation here
    ours = module(x, mixed(y, lam=lam))
    core = module.method_loss
    ref = (lam * core(x, y, reduction="none") + (1 - lam) * core(x, y.flip(0), reduction="none")).mean()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    params = list(module.parameters())
    for ga, gb in zip(grads(ours, x, *params), grads(ref, x, *params)):
        torch.testing.assert_close(ga, gb, rtol=1e-5, atol=1e-7)


def test_ols_vision_equals_token_ols_over_periods():
    """Same rows as [N, K] hard targets through the adapter and as a padded token batch through
    TokenLoss: the same losses and the same soft labels after each period."""
    vision, token = ClassificationLoss("ols", num_classes=K).train(), TokenLoss("ols", num_classes=K).train()
    for period in range(3):
        for step in range(2):
            x, y = rows(n=10, seed=10 * period + step, scale=1.0 + period)
            tokens = torch.cat([x, torch.zeros(2, K)]).detach().view(3, 4, K)
            ty = torch.cat([y, torch.full((2,), -100)]).view(3, 4)
            torch.testing.assert_close(vision(x, y), token(tokens, ty), rtol=1e-6, atol=1e-6)
        vision.end_period(), token.end_period()
        torch.testing.assert_close(vision.ols.soft_labels(), token.ols.soft_labels())


def test_ols_soft_targets_mix_soft_labels_and_accumulate_by_target_argmax():
    ols = ClassificationLoss("ols", num_classes=K).train()
    x, y = rows(n=10, seed=11)
    ols(x.detach(), y)
    ols.end_period()  # non-uniform soft labels from now on
    S = ols.ols.soft_labels()
    x, y = rows(n=10, seed=12)
    t = mixed(y, lam=0.6)
    with torch.no_grad():
        x[:5].scatter_add_(1, t.argmax(-1)[:5, None], torch.full((5, 1), 20.0))  # these 5 predict argmax t
    loss = ols(x, t)
    logp = F.log_softmax(x, -1)
    ref = (0.5 * (-t * logp).sum(-1) + 0.5 * (-(t @ S) * logp).sum(-1)).mean()
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    hit = x.argmax(-1) == t.argmax(-1)
    assert 0 < int(hit.sum()) < 10
    torch.testing.assert_close(ols.ols.count, torch.bincount(t.argmax(-1)[hit], minlength=K).float())
    acc = torch.zeros(K, K).index_add_(0, t.argmax(-1)[hit], torch.softmax(x.detach()[hit], -1))
    torch.testing.assert_close(ols.ols.table.acc, acc)


def test_state_and_learnable_parameters_round_trip():
    lls = ClassificationLoss("lls", 0.2, num_classes=K)
    assert [n for n, _ in lls.named_parameters()] == ["lls.table.weight"]
    x, y = rows(seed=13)
    optimizer = torch.optim.SGD(lls.parameters(), lr=1.0)
    lls(x.detach(), mixed(y)).backward()
    optimizer.step()
    again = ClassificationLoss("lls", 0.2, num_classes=K)
    again.load_state_dict(lls.state_dict())
    torch.testing.assert_close(again(x, y), lls(x, y))
    with pytest.raises(ValueError, match="num_classes=9"):
        ClassificationLoss("lls", 0.2, num_classes=9).load_state_dict(lls.state_dict())


def test_mix_batch_targets_match_the_mixed_pixels():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 1, 10, 10)
    y = torch.tensor([0, 1, 2, 3, 4, 5])
    mx, t = mix_batch(x, y, K, MixConfig(mixup_alpha=0.8), g)
    lam = float(t[0, 0])
    torch.testing.assert_close(mx, lam * x + (1 - lam) * x.flip(0))
    torch.testing.assert_close(t, mixed(y, lam=lam))
    mx, t = mix_batch(x, y, K, MixConfig(cutmix_alpha=1.0), g)
    pasted = (mx != x).float().mean(dim=(1, 2, 3))  # share of pixels taken from the partner
    torch.testing.assert_close(t[0, 0], 1 - pasted[0], atol=1e-6, rtol=0)
    unmixed, t = mix_batch(x, y, K, MixConfig(), g)
    assert unmixed is x and torch.equal(t, one_hot(y, K))


@pytest.mark.parametrize("bad, message", [
    (lambda x, y: (x, one_hot(y, K)[:, :5]), r"soft target shape \(12, 5\) does not match logits shape \(12, 7\)"),
    (lambda x, y: (x, one_hot(y, K) - 0.5), "finite and non-negative, got -0.5"),
    (lambda x, y: (x, one_hot(y, K) * float("nan")), "finite and non-negative, got nan"),
    (lambda x, y: (x[:, :5], y.clamp(max=4)), "num_classes=7"),
    (lambda x, y: (x, torch.where(y == y[0], 7, y)), r"target value 7 is outside \[0, 7\)"),
])
@pytest.mark.parametrize("method", ["ls", "ols", "lspp"])
def test_bad_targets_name_the_value(bad, message, method):
    x, y = rows()
    with pytest.raises(ValueError, match=message):
        make(method)(*bad(x.detach(), y))


def test_bad_options_name_the_value():
    with pytest.raises(ValueError, match="reduction must be 'mean' or 'sum', got 'none'"):
        ClassificationLoss("ls", reduction="none")
    with pytest.raises(ValueError, match="alpha must be in"):
        ClassificationLoss("maxsup", 1.5)
