"""Property-based tests (hypothesis): every method over random shapes, dtypes, ignore patterns,
masked classes (-inf logits) and extreme logits, against a dense float64 reference written from
the papers' formulas (``0 log 0 = 0``; a class with target mass and probability 0 costs +inf).

For each drawn batch: the loss per position is finite exactly where the reference is, equal to it
there; ``none`` equals ``torch.nn.functional.cross_entropy`` and ``ls`` torch's
``label_smoothing=`` bit for bit in float64; the fused output layer (hidden states, weight and a
bias holding the masked classes) equals the logits path.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from labelreg_nlp import TokenLoss  # noqa: E402
from labelreg_nlp.losses.fused_linear import fused_linear_parts  # noqa: E402
from labelreg_nlp.losses.logit_stats import first_argmax  # noqa: E402

IGNORE = -100
METHODS = ("none", "ls", "ls-fairseq", "maxsup", "ols", "ols-sparse", "lspp", "lls")
DTYPES = {"float64": torch.float64, "float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
EXAMPLES = 400  # per test and run (about 10 s for the four tests on a 2-core CPU)


@st.composite
def batches(draw):
    """(logits [N, K] in the drawn dtype, targets [N] with IGNORE, the masked-class pattern)."""
    n = draw(st.integers(1, 6))
    k = draw(st.integers(2, 9))
    dtype = draw(st.sampled_from(sorted(DTYPES)))
    scale = draw(st.sampled_from([1.0, 30.0, 1e3] + ([1e4, 1e30] if dtype in ("float32", "float64") else [])))
    seed = draw(st.integers(0, 2**31 - 1))
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k, generator=g, dtype=torch.float64) * scale
    if dtype == "float16":
        logits = logits.clamp(-6e4, 6e4)
    masked = torch.rand(n, k, generator=g) < draw(st.sampled_from([0.0, 0.2, 0.5]))
    masked[:, 0] = False  # a row keeps at least one class (an all -inf row is NaN for torch too)
    logits[masked] = -math.inf
    target = torch.randint(0, k, (n,), generator=g)
    target[torch.rand(n, generator=g) < draw(st.sampled_from([0.0, 0.3, 1.0]))] = IGNORE
    return logits.to(DTYPES[dtype]), target, seed


def build(method: str, k: int, seed: int) -> TokenLoss:
    """The method's loss in evaluation mode (no OLS accumulation), with a random learned table for
    LS++/LLS and, for OLS, soft labels learned over one period of random data."""
    options = {"ls-fairseq": dict(convention="fairseq"), "ols-sparse": dict(ols_topk=min(2, k))}.get(method, {})
    name = method.split("-")[0]
    loss = TokenLoss(name, 0.0 if name == "none" else 0.1, num_classes=k, ignore_index=IGNORE,
                     **({"ols_dense": True} if method == "ols" else {}), **options)
    g = torch.Generator().manual_seed(seed)
    for p in loss.parameters():
        p.data = torch.randn(p.shape, generator=g, dtype=p.dtype)
    if name == "ols":
        loss.train()
        z = torch.randn(64, k, generator=g) * 3
        y = z.argmax(-1)  # every row correct: accumulated
        y[::3] = torch.randint(0, k, (len(y[::3]),), generator=g)
        loss(z.requires_grad_(), y)
        loss.end_period()
    return loss.eval()


def reference(loss: TokenLoss, method: str, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per position, float64, from the formulas; 0 at ignored positions."""
    z = logits.double()
    k = z.size(-1)
    keep = target != IGNORE
    y = torch.where(keep, target, 0)
    log_p = torch.log_softmax(z, dim=-1)
    p = log_p.exp()
    onehot = F.one_hot(y, k).double()

    def ce(t, log_q):  # -sum t log q, with 0 log 0 = 0 and t > 0 at log q = -inf giving +inf
        return -torch.where(t > 0, t * log_q, torch.zeros((), dtype=torch.float64)).sum(-1)

    name = method.split("-")[0]
    a = 0.1
    if name == "none":
        out = ce(onehot, log_p)
    elif method == "ls":
        out = ce((1 - a) * onehot + a / k, log_p)
    elif method == "ls-fairseq":
        out = ce((1 - a) * onehot + a / (k - 1) * (1 - onehot), log_p)
    elif name == "maxsup":
        out = ce(onehot, log_p) + a * (z.max(-1).values - z.mean(-1))
    elif name == "ols":
        soft = loss.method_loss.soft_labels().double()[y]
        w = loss.method_loss
        out = w.hard_weight * ce(onehot, log_p) + w.soft_weight * ce(soft, log_p)
    else:
        q = loss.method_loss.learned_distribution(y).double()
        t = (1 - a) * onehot + a * q
        log_t = torch.log(t)
        if name == "lspp":
            out = (ce(t, log_p) + ce(p, log_t)) / 2
        else:
            out = (ce(t, log_p) - ce(t, log_t) + ce(p, log_t) - ce(p, log_p)) / 2
    return torch.where(keep, out, torch.zeros((), dtype=torch.float64))


def close(ours: torch.Tensor, ref: torch.Tensor, logits: torch.Tensor, float32_tables: bool = False) -> None:
    """Same finiteness, equal where finite: to float64 rounding for float64 logits, else to float32's
    (the math runs in float32, the learned tables too)."""
    finite = torch.isfinite(ref)
    assert torch.equal(torch.isfinite(ours), finite), (ours, ref)
    assert torch.equal(torch.isnan(ours), torch.isnan(ref)), (ours, ref)
    top = logits.double().abs().masked_fill(torch.isinf(logits), 0).max().item()
    eps = 1e-12 if logits.dtype == torch.float64 and not float32_tables else 2e-6
    torch.testing.assert_close(ours.double()[finite], ref[finite], rtol=eps * 10, atol=eps * 10 * (1 + top))


@settings(max_examples=EXAMPLES, deadline=None)
@given(batches(), st.sampled_from(METHODS))
def test_every_method_equals_the_reference_where_finite(batch, method):
    logits, target, seed = batch
    loss = build(method, logits.size(-1), seed)
    if method == "ols-sparse":  # the documented limit: a masked class stored in the top-k with zero mass
        ols, y = loss.method_loss, target[target != IGNORE]
        idx, val = ols.table.soft_idx[y].long(), ols.table.soft_val[y]
        hypothesis.assume(not bool((torch.isinf(logits[target != IGNORE].gather(1, idx)) & (val == 0)).any()))
    parts = loss.parts(logits, target, keep_per_position=True)
    close(parts.per_position, reference(loss, method, logits, target), logits, float32_tables=method in ("lspp", "lls"))
    assert parts.ntokens == (target != IGNORE).sum()


@settings(max_examples=EXAMPLES, deadline=None)
@given(batches())
def test_none_and_ls_are_torch_exactly(batch):
    """In float64 the match is exact to rounding: masked classes, extreme logits, ignored rows."""
    logits, target, _ = batch
    z = logits.double()
    for alpha, method in ((0.0, "none"), (0.1, "ls")):
        ours = TokenLoss(method, alpha, ignore_index=IGNORE)(z, target)
        ref = F.cross_entropy(z, target, ignore_index=IGNORE, label_smoothing=alpha)
        if bool((target != IGNORE).any()):
            assert bool(torch.isfinite(ours)) == bool(torch.isfinite(ref))
            if torch.isfinite(ref):
                torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-9 * (1 + z.abs().nan_to_num(0, 0, 0).max()))
        else:  # torch gives NaN for a batch of only ignored positions; every loss here gives 0
            assert float(ours) == 0.0


@settings(max_examples=EXAMPLES, deadline=None)
@given(batches(), st.sampled_from(METHODS), st.integers(1, 3))
def test_fused_output_layer_equals_the_logits_path(batch, method, chunk_rows):
    """Masked classes reach the fused path through the bias (-inf); same sums, same finiteness."""
    logits, target, seed = batch
    if logits.dtype not in (torch.float32, torch.float64):
        logits = logits.float()
    n, k = logits.shape
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(n, 3, generator=g, dtype=logits.dtype).requires_grad_()
    weight = torch.randn(k, 3, generator=g, dtype=logits.dtype).requires_grad_()
    bias = torch.where(torch.isinf(logits[0]), -math.inf, 0.0).to(logits.dtype)
    loss = build(method, k, seed)
    plain = loss.method_loss.parts(hidden @ weight.T + bias, target, ignore_index=IGNORE)
    fused = fused_linear_parts(hidden, weight, target, loss.method_loss, bias=bias, ignore_index=IGNORE,
                               chunk_rows=chunk_rows)
    assert bool(torch.isfinite(fused.loss)) == bool(torch.isfinite(plain.loss))
    if torch.isfinite(plain.loss):
        eps = 1e-12 if logits.dtype == torch.float64 else 1e-5
        torch.testing.assert_close(fused.loss, plain.loss, rtol=eps, atol=eps)
        if method in ("none", "ls", "maxsup") and bool((target != IGNORE).any()):
            g_plain = torch.autograd.grad(plain.loss, (hidden, weight))
            g_fused = torch.autograd.grad(fused.loss, (hidden, weight))
            for a, b in zip(g_fused, g_plain):
                torch.testing.assert_close(a, b, rtol=eps * 10, atol=eps * 10)
    assert int(fused.ntokens) == int(plain.ntokens) and int(fused.ncorrect) == int(plain.ncorrect)


@settings(max_examples=EXAMPLES, deadline=None)
@given(batches(), st.sampled_from(METHODS))
def test_gradients_are_finite_where_torch_gives_finite_ones(batch, method):
    """A masked class makes a smoothing loss +inf (as torch's label_smoothing); the logits'
    gradient stays finite (as torch's) for every method, ignored rows get an exact zero."""
    logits, target, seed = batch
    z = logits.double().requires_grad_()
    loss = build(method, z.size(-1), seed)
    (grad,) = torch.autograd.grad(loss.parts(z, target).loss, z)
    keep = target != IGNORE
    assert bool((grad[~keep] == 0).all())
    finite_rows = torch.isfinite(z).any(-1) & keep & (z.abs().masked_fill(torch.isinf(z), 0).amax(-1) < 1e30)
    assert bool(torch.isfinite(grad[finite_rows]).all()), grad


@settings(max_examples=EXAMPLES, deadline=None)
@given(st.integers(1, 5), st.integers(1, 80), st.sampled_from([2, 5, 1000]), st.integers(0, 2**31 - 1),
       st.booleans())
def test_first_argmax_is_torch_argmax(n, k, levels, seed, nonfinite):
    """Few distinct values (many ties, inside a strided block and across blocks), NaN and +-inf."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randint(0, levels, (n, k), generator=g).double()
    if nonfinite:
        z[torch.rand(n, k, generator=g) < 0.05] = math.nan
        z[torch.rand(n, k, generator=g) < 0.05] = math.inf
        z[torch.rand(n, k, generator=g) < 0.2] = -math.inf
    for dtype in (torch.float64, torch.float32):
        assert torch.equal(first_argmax(z.to(dtype)), z.to(dtype).argmax(dim=-1))
