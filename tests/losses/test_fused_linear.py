"""The fused output layer + loss against the plain path (logits = h W^T + b, then the method):
same loss and gradients for every registry method, with padding, bias or none, tied embeddings,
the same OLS state, the same logs; and the inputs it refuses."""

import pytest
import torch
import torch.nn.functional as F

from labelreg_nlp import LabelSmoothingLoss, MaxSupLoss, TokenLoss, fused_linear_loss, fused_linear_parts
from labelreg_nlp.losses.registry import METHODS

V, D = 37, 6
# every registry method, plus the variants whose formula or storage differs
CASES = [(name, {}) for name in METHODS] + [
    ("ls", {"convention": "fairseq"}),
    ("ols", {"ols_topk": 5}),
    ("lspp", {"lspp_rank": 4}),
    ("lls", {"lls_rank": 4}),
]


def _inputs(seed=0, b=3, t=9, dtype=torch.float32, correct_rows=4):
    g = torch.Generator().manual_seed(seed)
    weight = torch.randn(V, D, generator=g).to(dtype)
    hidden = torch.randn(b, t, D, generator=g).to(dtype)
    target = torch.randint(0, V, (b, t), generator=g)
    target[0, 5:] = -100  # uneven padding
    target[2, 1:3] = -100
    # a few positions predicted correctly (their hidden state is their class's weight, scaled), so OLS accumulates
    flat_h, flat_y = hidden.view(-1, D), target.view(-1)
    for i in range(correct_rows):
        if flat_y[i] >= 0:
            flat_h[i] = weight[flat_y[i]] * 3
    return hidden, weight, torch.randn(V, generator=g).to(dtype), target


def _randomize(loss, seed=3):
    """Non-zero learned tables, so their gradients are not trivially equal."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in loss.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    return loss


def _run(method, options, fused, use_bias, chunk_rows=4, steps=2, tied=False):
    """Loss, gradients and OLS/learned state after ``steps`` training steps (a period ends after each)."""
    hidden, weight, bias, target = _inputs()
    loss = _randomize(TokenLoss(method, 0.1, num_classes=V, **options).train())
    leaves = [hidden.requires_grad_(), weight.requires_grad_()]
    if use_bias:
        leaves.append(bias.requires_grad_())
    embedding = torch.nn.Embedding(V, D)
    if tied:  # the output projection is the input embedding's weight: both uses reach it
        embedding.weight = torch.nn.Parameter(weight.detach().clone())
        leaves = [hidden, embedding.weight] + leaves[2:]
    out = grads = None
    for _ in range(steps):
        w = embedding.weight if tied else weight
        h = hidden + embedding(target.clamp(min=0)) if tied else hidden
        b = bias if use_bias else None
        out = loss.fused(h, w, target, bias=b, chunk_rows=chunk_rows) if fused else loss(F.linear(h, w, b), target)
        grads = torch.autograd.grad(out, leaves + list(loss.parameters()))
        loss.end_period()
    return out, grads, loss.state_dict(), loss.log_values()


@pytest.mark.parametrize("method,options", CASES, ids=[f"{m}-{o}" if o else m for m, o in CASES])
@pytest.mark.parametrize("use_bias", [False, True], ids=["no-bias", "bias"])
def test_fused_equals_plain_loss_gradients_and_state(method, options, use_bias):
    plain = _run(method, options, fused=False, use_bias=use_bias)
    fused = _run(method, options, fused=True, use_bias=use_bias)
    torch.testing.assert_close(fused[0], plain[0], rtol=1e-5, atol=1e-6)
    for g_fused, g_plain in zip(fused[1], plain[1], strict=True):
        torch.testing.assert_close(g_fused, g_plain, rtol=1e-5, atol=1e-6)
    assert fused[2].keys() == plain[2].keys()
    for key in plain[2]:  # OLS soft labels and counters, learned tables
        torch.testing.assert_close(fused[2][key], plain[2][key], rtol=1e-5, atol=1e-6)
    assert fused[3] == pytest.approx(plain[3], rel=1e-5)  # logged values (LS++/LLS: over every chunk)


@pytest.mark.parametrize("method", ["ls", "ols", "lls"])
def test_tied_embeddings_get_both_gradients(method):
    plain = _run(method, {}, fused=False, use_bias=False, tied=True, steps=1)
    fused = _run(method, {}, fused=True, use_bias=False, tied=True, steps=1)
    for g_fused, g_plain in zip(fused[1], plain[1], strict=True):
        torch.testing.assert_close(g_fused, g_plain, rtol=1e-5, atol=1e-6)


def test_ols_accumulates_what_the_plain_path_accumulates():
    hidden, weight, _, target = _inputs(correct_rows=20)
    counts = []
    for fused in (False, True):
        loss = TokenLoss("ols", num_classes=V).train()
        h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
        (loss.fused(h, w, target, chunk_rows=5) if fused else loss(h @ w.T, target)).backward()
        counts.append(loss.ols.count.clone())
        assert int(loss.ols.count.sum()) > 3  # the test accumulates something
    torch.testing.assert_close(counts[1], counts[0])


@pytest.mark.parametrize("chunk_rows", [1, 7, None])
def test_chunk_size_does_not_change_the_result(chunk_rows):
    hidden, weight, bias, target = _inputs()
    ref = F.cross_entropy(F.linear(hidden, weight, bias).view(-1, V), target.view(-1), label_smoothing=0.2)
    ours = fused_linear_loss(hidden, weight, target, LabelSmoothingLoss(0.2), bias=bias, ignore_index=-100,
                             chunk_rows=chunk_rows)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-6)


def test_matches_torch_cross_entropy_gradients_and_upstream_scale():
    """Against torch's own CE with label smoothing, under a loss scale (AMP, accumulation)."""
    hidden, weight, bias, target = _inputs()
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    ref = F.cross_entropy(F.linear(*leaves).view(-1, V), target.view(-1), label_smoothing=0.1, reduction="sum")
    ref_grads = torch.autograd.grad(3.5 * ref, leaves)
    leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
    ours = fused_linear_loss(leaves[0], leaves[1], target, LabelSmoothingLoss(0.1), bias=leaves[2],
                             ignore_index=-100, reduction="sum", chunk_rows=3)
    torch.testing.assert_close(ours, ref, rtol=1e-6, atol=1e-5)
    for ours_g, ref_g in zip(torch.autograd.grad(3.5 * ours, leaves), ref_grads, strict=True):
        torch.testing.assert_close(ours_g, ref_g, rtol=1e-5, atol=1e-6)


def test_logged_sums_equal_the_plain_parts():
    hidden, weight, bias, target = _inputs()
    plain = MaxSupLoss(0.1).parts(F.linear(hidden, weight, bias), target, ignore_index=-100)
    fused = fused_linear_parts(hidden, weight, target, MaxSupLoss(0.1), bias=bias, ignore_index=-100, chunk_rows=2)
    for name in ("loss", "nll", "penalty"):
        torch.testing.assert_close(getattr(fused, name), getattr(plain, name), rtol=1e-6, atol=1e-5)
    assert int(fused.ntokens) == int(plain.ntokens) and int(fused.ncorrect) == int(plain.ncorrect) > 0
    assert not fused.nll.requires_grad and not fused.penalty.requires_grad


def test_all_padding_gives_zero_loss_and_zero_gradients():
    hidden, weight, _, target = _inputs()
    h, w = hidden.requires_grad_(), weight.requires_grad_()
    out = TokenLoss("maxsup", 0.1).fused(h, w, torch.full_like(target, -100))
    gh, gw = torch.autograd.grad(out, [h, w])
    assert float(out.detach()) == 0.0 and not gh.any() and not gw.any()


def test_bfloat16_follows_the_plain_bfloat16_path():
    """Logits in the model's dtype (as its own output layer gives them), math in float32."""
    hidden, weight, bias, target = _inputs(dtype=torch.bfloat16)
    results = []
    for fused in (False, True):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        loss = TokenLoss("maxsup", 0.1)
        out = loss.fused(*leaves[:2], target, bias=leaves[2]) if fused else loss(F.linear(*leaves), target)
        results.append((out, torch.autograd.grad(out, leaves)))
    assert results[1][0].dtype == torch.float32
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[1][1], results[0][1], strict=True):
        assert a.dtype == torch.bfloat16
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)  # bfloat16 rounding of the sums


def test_autocast_casts_like_its_linear():
    hidden, weight, bias, target = _inputs()
    results = []
    for fused in (False, True):
        leaves = [t.clone().requires_grad_() for t in (hidden, weight, bias)]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = TokenLoss("ls", 0.1)
            out = loss.fused(*leaves[:2], target, bias=leaves[2]) if fused else loss(F.linear(*leaves), target)
        results.append((out, torch.autograd.grad(out, leaves)))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=1e-5, atol=1e-5)
    for a, b in zip(results[1][1], results[0][1], strict=True):
        assert a.dtype == torch.float32  # the leaves' dtype, through autocast's cast
        torch.testing.assert_close(a, b, rtol=2e-2, atol=2e-3)


def test_evaluation_computes_no_gradient_and_leaves_ols_state_alone():
    hidden, weight, _, target = _inputs(correct_rows=20)
    loss = TokenLoss("ols", num_classes=V).train()
    with torch.no_grad():
        out = loss.fused(hidden.requires_grad_(), weight.requires_grad_(), target)
    assert out.grad_fn is None and int(loss.ols.count.sum()) == 0
    torch.testing.assert_close(out, loss(hidden.detach() @ weight.detach().T, target))


def test_bad_inputs_name_the_value():
    hidden, weight, bias, target = _inputs()
    loss = TokenLoss("ls", 0.1)
    bad = target.clone()
    bad[1, 4] = V
    with pytest.raises(ValueError, match=r"target value 37 is outside \[0, 37\)"):
        loss.fused(hidden, weight, bad)
    with pytest.raises(ValueError, match=r"weight must have shape \[V, d\] with d = hidden's last dimension 6, got \(37, 5\)"):
        loss.fused(hidden, weight[:, :5], target)
    with pytest.raises(ValueError, match=r"bias must have shape \[V\] = \(37,\), got \(36,\)"):
        loss.fused(hidden, weight, target, bias=bias[1:])
    with pytest.raises(ValueError, match=r"target shape \(3, 8\) does not match hidden shape \(3, 9, 6\)"):
        loss.fused(hidden, weight, target[:, 1:])
    with pytest.raises(TypeError, match="must share a dtype"):
        loss.fused(hidden, weight.double(), target)
    with pytest.raises(ValueError, match="chunk_rows must be >= 1, got 0"):
        loss.fused(hidden, weight, target, chunk_rows=0)
    with pytest.raises(ValueError, match="reduction='mean' or 'sum'"):
        fused_linear_loss(hidden, weight, target, LabelSmoothingLoss(0.1), reduction="none")
    with pytest.raises(ValueError, match="set up for num_classes=40"):
        TokenLoss("ols", num_classes=40).fused(hidden, weight, target)


def test_validate_args_off_skips_the_target_check_only():
    hidden, weight, _, target = _inputs()
    checked, unchecked = TokenLoss("maxsup", 0.1), TokenLoss("maxsup", 0.1, validate_args=False)
    torch.testing.assert_close(unchecked.fused(hidden, weight, target), checked.fused(hidden, weight, target))
    torch.testing.assert_close(unchecked(hidden @ weight.T, target), checked(hidden @ weight.T, target))
    bad = target.clamp(min=0) + V
    with pytest.raises(ValueError, match="is outside"):
        checked(hidden @ weight.T, bad)
    with pytest.raises((IndexError, RuntimeError)) as caught:  # torch's own index error, not ours
        unchecked(hidden @ weight.T, bad)
    assert "is outside" not in str(caught.value)
    assert unchecked.method_loss.validate_args is False  # the fused path restores the module's setting


def test_a_retained_graph_gives_the_same_gradient_at_every_backward():
    hidden, weight, _, target = _inputs()
    h, w = hidden.requires_grad_(), weight.requires_grad_()
    out = TokenLoss("ls", 0.1).fused(h, w, target, num_items=1)  # a plain sum: the stored gradients, uncopied
    out.backward(retain_graph=True)
    first = (h.grad.clone(), w.grad.clone())
    out.backward(retain_graph=True)
    out.backward()
    torch.testing.assert_close(h.grad, 3 * first[0])
    torch.testing.assert_close(w.grad, 3 * first[1])
