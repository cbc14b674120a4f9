"""LS++ and LLS against the papers' formulas, the authors' code, hand-computed numbers and autograd."""

import math

import pytest
import torch
import torch.nn.functional as F

from labelreg_nlp.losses import learned as learned_module
from labelreg_nlp.losses import logit_stats as logit_stats_module
from labelreg_nlp.losses.learned_tables import FactoredTable, FullTable
from labelreg_nlp.losses.lls import LearnableLabelSmoothing
from labelreg_nlp.losses.lspp import LabelSmoothingPlusPlus
from tests.losses.batches import IGNORE, batch

METHODS = {"lspp": LabelSmoothingPlusPlus, "lls": LearnableLabelSmoothing}


def randomized(module, seed=1, scale=1.5):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.table.params():
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return module


def insert_zero_column(c):
    """[K, K-1] -> [K, K] with -inf on the diagonal (the paper's 'insert 0 at y' in logit space)."""
    k = c.size(0)
    full = torch.full((k, k), float("-inf"), dtype=c.dtype)
    mask = ~torch.eye(k, dtype=torch.bool)
    return full.masked_scatter(mask, c)


# ------------------------------------------------------------------ references, written from the papers
def lspp_reference(logits, target, c_logits, alpha):
    """Eq. 3 and the stop-gradient symmetric CE of Section 3.2, dense, with autograd."""
    keep = target != IGNORE
    z, y = logits[keep], target[keep]
    c = torch.softmax(insert_zero_column(c_logits), dim=-1)[y]
    t = (1 - alpha) * F.one_hot(y, z.size(-1)) + alpha * c
    log_p = torch.log_softmax(z, dim=-1)
    forward = -(t.detach() * log_p).sum(-1)
    reverse = -(log_p.exp().detach() * torch.log(t)).sum(-1)
    return ((forward + reverse) / 2).sum()


def lls_pseudo_code(logits, target, q_logits, alpha):
    """Appendix A: KL(y_tgt, pred) and KL(pred, y_tgt) summed per row; summed over positions here."""
    keep = target != IGNORE
    z, y = logits[keep], target[keep]
    pred = F.softmax(z, 1)
    y_tgt = (1 - alpha) * F.one_hot(y, num_classes=z.size(-1)) + alpha * F.softmax(q_logits[y], 1)

    def kl(a, b):
        return (a * (a.log() - b.log())).sum(-1)

    return ((kl(y_tgt, pred) + kl(pred, y_tgt)) / 2).sum()


def lspp_authors(logits, y, c_logits, alpha):
    """The authors' published loss (mean over the batch, 1e-6 inside both logarithms)."""
    k = logits.size(-1)
    pred = F.softmax(logits, 1)
    c = F.softmax(c_logits, 1).reshape(-1, k)
    c = F.pad(c, (1, 0, 0, 0)).reshape(-1)
    c = F.pad(c, (0, 1)).reshape(k, k)
    y_tgt = (1 - alpha) * F.one_hot(y, num_classes=k).float() + alpha * c[y]

    def ce(y_hat, y_target):
        return (-y_target * (y_hat + 1e-6).log()).sum(1).mean()

    return (ce(y_tgt, pred.detach()) + ce(pred, y_tgt.detach())) / 2


def ours_and_grads(module, logits, target):
    logits = logits.detach().clone().requires_grad_()
    module.zero_grad()
    loss = module(logits, target, ignore_index=IGNORE, reduction="sum")
    loss.backward()
    return loss.detach(), logits.grad, [p.grad.clone() for p in module.table.params()]


@pytest.mark.parametrize("name,alpha", [("lspp", 0.1), ("lspp", 0.4), ("lls", 0.1), ("lls", 1.0)])
def test_equals_the_papers_formula_loss_and_both_gradients(name, alpha):
    """LS++: Eq. 3 with the stop gradients of Section 3.2; LLS: the Appendix A pseudo code."""
    reference = {"lspp": lspp_reference, "lls": lls_pseudo_code}[name]
    logits, target = batch(k=9, seed=3)
    module = randomized(METHODS[name](9, alpha=alpha))
    loss, g_logits, (g_table,) = ours_and_grads(module, logits, target)
    table = module.table.weight.detach().clone().requires_grad_()
    x = logits.detach().clone().requires_grad_()
    ref = reference(x, target, table, alpha)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_logits, x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(g_table, table.grad, rtol=1e-4, atol=1e-6)


def test_lspp_matches_the_authors_code_up_to_their_epsilon():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(32, 10, generator=g) * 0.5, torch.randint(0, 10, (32,), generator=g)
    lspp = randomized(LabelSmoothingPlusPlus(10, alpha=0.1), scale=0.5)
    loss, g_logits, (g_c,) = ours_and_grads(lspp, logits, target)
    x = logits.clone().requires_grad_()
    c = lspp.table.weight.detach().clone().requires_grad_()
    theirs = lspp_authors(x, target, c, 0.1)
    theirs.backward()
    # theirs is a batch mean with log(. + 1e-6): p >= 1e-2 here, so equal to ~1e-4 relative
    torch.testing.assert_close(loss / 32, theirs.detach(), rtol=1e-4, atol=0)
    torch.testing.assert_close(g_logits / 32, x.grad, rtol=1e-3, atol=1e-6)
    torch.testing.assert_close(g_c / 32, c.grad, rtol=1e-3, atol=1e-6)


def test_lspp_stop_gradients_network_learns_forward_term_table_learns_reverse_term():
    logits, target = batch(k=7, seed=5)
    lspp = randomized(LabelSmoothingPlusPlus(7, alpha=0.2))
    (c,) = lspp.table.params()
    x = logits.detach().clone().requires_grad_()
    forward, reverse, _, _ = lspp.terms(x, target, IGNORE)
    g_x, g_c = torch.autograd.grad(forward.sum(), [x, c], retain_graph=True)
    assert g_x.abs().sum() > 0 and torch.count_nonzero(g_c) == 0
    g_x, g_c = torch.autograd.grad(reverse.sum(), [x, c])
    assert torch.count_nonzero(g_x) == 0 and g_c.abs().sum() > 0


def test_lspp_hand_computed_case_at_k4():
    # K = 4, y = 1, alpha = 0.2, p = (1, 3, 1, 1) / 6, c_1 on classes (0, 2, 3) = (1, 2, 5) / 8
    lspp = LabelSmoothingPlusPlus(4, alpha=0.2)
    with torch.no_grad():
        lspp.table.weight[1] = torch.tensor([0.0, math.log(2), math.log(5)])
    logits = torch.tensor([[0.0, math.log(3), 0.0, 0.0]], requires_grad=True)
    loss = lspp(logits, torch.tensor([1]))
    loss.backward()
    t = [0.2 / 8, 0.8, 0.4 / 8, 1.0 / 8]
    p = [1 / 6, 1 / 2, 1 / 6, 1 / 6]
    forward = 0.2 * math.log(6) + 0.8 * math.log(2)
    reverse = -sum(pk * math.log(tk) for pk, tk in zip(p, t))
    assert float(loss.detach()) == pytest.approx((forward + reverse) / 2, rel=1e-6)
    assert logits.grad[0].tolist() == pytest.approx([(pk - tk) / 2 for pk, tk in zip(p, t)], abs=1e-7)
    expected_c = [(0.5 * c - 1 / 6) / 2 for c in (1 / 8, 2 / 8, 5 / 8)]
    assert lspp.table.weight.grad[1].tolist() == pytest.approx(expected_c, abs=1e-7)
    assert torch.count_nonzero(lspp.table.weight.grad[[0, 2, 3]]) == 0


def test_lls_table_gradient_of_forward_kl_is_appendix_b_eq16():
    lls = randomized(LearnableLabelSmoothing(6, alpha=0.3))
    z, y = torch.randn(1, 6, generator=torch.Generator().manual_seed(1)), torch.tensor([2])
    forward, _, _, _ = lls.terms(z, y)
    (g,) = torch.autograd.grad(forward.sum(), lls.table.weight)
    q = torch.softmax(lls.table.weight.detach()[2], -1)
    t = 0.7 * F.one_hot(y, 6)[0] + 0.3 * q
    log_ratio = torch.log_softmax(z[0], -1) - t.log()  # log(p_hat / p_lls)
    eq16 = 0.3 * q * ((q * log_ratio).sum() - log_ratio)
    torch.testing.assert_close(g[2], eq16, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_factored_form_equals_the_full_form_when_exact(name):
    k = 6
    full = randomized(METHODS[name](k, alpha=0.2))
    factored = METHODS[name](k, alpha=0.2, rank=k)
    w = full.table.weight.detach()
    w_square = insert_zero_column(w).nan_to_num(neginf=0.0) if name == "lspp" else w
    with torch.no_grad():
        factored.table.u.copy_(torch.eye(k))
        factored.table.v.copy_(w_square.T)  # r_y[j] = u_y . v_j = W[y, j]
    logits, target = batch(k=k, seed=2)
    loss_full, g_full, (g_w,) = ours_and_grads(full, logits, target)
    loss_fact, g_fact, (_, g_v) = ours_and_grads(factored, logits, target)
    torch.testing.assert_close(loss_fact, loss_full, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g_fact, g_full, rtol=1e-5, atol=1e-7)
    g_w_square = insert_zero_column(g_w).nan_to_num(neginf=0.0) if name == "lspp" else g_w
    torch.testing.assert_close(g_v.T, g_w_square, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rank", [None, 3])
def test_gradcheck_in_float64(rank):
    """LLS: every gradient is the true derivative. LS++: the network's is that of the forward
    term with the table fixed, the table's that of the reverse term with the logits fixed."""
    logits = torch.randn(6, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2), requires_grad=True)
    target = torch.tensor([0, 4, IGNORE, 2, 2, 1])
    lls = randomized(LearnableLabelSmoothing(5, alpha=0.3, rank=rank), scale=0.7).double()
    assert torch.autograd.gradcheck(lambda x, *_: lls(x, target, ignore_index=IGNORE), (logits, *lls.table.params()))
    lspp = randomized(LabelSmoothingPlusPlus(5, alpha=0.3, rank=rank), scale=0.7).double()
    assert torch.autograd.gradcheck(lambda x: lspp.terms(x, target, IGNORE)[0].sum(), (logits,))
    fixed = logits.detach()
    params = [p.detach().clone().requires_grad_() for p in lspp.table.params()]

    def reverse(*values):
        for p, v in zip(lspp.table.params(), values):
            p.data = v.data
        with torch.enable_grad():
            return lspp.terms(fixed, target, IGNORE)[1].sum()

    # reverse term as a function of the table alone (numerical derivative by perturbing the table)
    lspp.zero_grad()
    lspp.terms(fixed, target, IGNORE)[1].sum().backward()
    analytic = [p.grad.clone() for p in lspp.table.params()]
    for i, p in enumerate(params):
        numeric = torch.zeros_like(p)
        for j in range(p.numel()):
            values = [q.detach().clone() for q in params]
            values[i].view(-1)[j] += 1e-6
            up = reverse(*values)
            values[i].view(-1)[j] -= 2e-6
            down = reverse(*values)
            numeric.view(-1)[j] = (up - down) / 2e-6
        torch.testing.assert_close(analytic[i], numeric, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_chunked_walk_gives_the_same_numbers(name, monkeypatch):
    logits, target = batch(k=9, seed=4)
    module = randomized(METHODS[name](9, alpha=0.1))
    whole = ours_and_grads(module, logits, target)
    monkeypatch.setattr(logit_stats_module, "CHUNK_ELEMENTS", 20)  # 2 rows per chunk
    chunked = ours_and_grads(module, logits, target)
    torch.testing.assert_close(chunked[0], whole[0])
    torch.testing.assert_close(chunked[1], whole[1])
    torch.testing.assert_close(chunked[2], whole[2])


@pytest.mark.parametrize("name,full", [("lspp", True), ("lspp", False), ("lls", True), ("lls", False)])
def test_weighted_positions_of_repeated_classes_across_chunks(name, full, monkeypatch):
    """Rows are built once per class and their gradients summed per class: with a few classes
    repeated over many positions, classes split across chunks and per-position weights (some
    zero), the loss and both gradients equal the reference summed position by position; a
    zero-weight position adds nothing, not even with NaN logits."""
    reference = {"lspp": lspp_reference, "lls": lls_pseudo_code}[name]
    k, n = 7, 40
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(n, k, generator=g) * 2
    target = torch.randint(0, 3, (n,), generator=g)  # three classes over 40 positions
    weight = torch.rand(n, generator=g)
    weight[::5] = 0.0
    logits[5] = float("nan")  # weight 0
    module = randomized(METHODS[name](k, alpha=0.2, **({"full": True} if full else {"rank": 3})))
    monkeypatch.setattr(logit_stats_module, "CHUNK_ELEMENTS", 4 * 4 * k)  # 4 rows per chunk
    monkeypatch.setattr(learned_module, "CHUNK_MIN_ROWS", 1)
    x = logits.clone().requires_grad_()
    per_position = module.parts(x, target, keep_per_position=True).per_position
    (weight * per_position.nan_to_num(0.0)).sum().backward()
    assert bool((x.grad[weight == 0] == 0).all())
    params = [p.detach().clone().requires_grad_() for p in module.table.params()]
    table = params[0] if full else params[0] @ params[1].T
    if name == "lspp" and not full:  # the reference takes C [K, K - 1], the classes other than y
        table = table[~torch.eye(k, dtype=torch.bool)].view(k, k - 1)
    x_ref = logits.clone().requires_grad_()
    live = (weight > 0).nonzero().squeeze(-1).tolist()
    total = sum(weight[i] * reference(x_ref[i:i + 1], target[i:i + 1], table, 0.2) for i in live)
    total.backward()
    torch.testing.assert_close((weight * per_position.nan_to_num(0.0)).sum().detach(), total.detach())
    torch.testing.assert_close(x.grad[weight > 0], x_ref.grad[weight > 0], rtol=1e-4, atol=1e-6)
    for ours, ref in zip(module.table.params(), params):
        torch.testing.assert_close(ours.grad, ref.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name,alpha", [("lspp", 0.2), ("lls", 0.2), ("lls", 1.0)])
def test_every_position_its_own_class_equals_the_references(name, alpha):
    """Targets all distinct (each chunk's rows are its positions' rows, taken without a copy):
    the loss and both gradients still equal the papers' formulas."""
    reference = {"lspp": lspp_reference, "lls": lls_pseudo_code}[name]
    g = torch.Generator().manual_seed(13)
    logits = torch.randn(21, 40, generator=g) * 2
    target = torch.randperm(40, generator=g)[:21]
    module = randomized(METHODS[name](40, alpha=alpha))
    loss, g_logits, (g_table,) = ours_and_grads(module, logits, target)
    table = module.table.weight.detach().clone().requires_grad_()
    x = logits.clone().requires_grad_()
    ref = reference(x, target, table, alpha)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(g_logits, x.grad, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(g_table, table.grad, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_padding_gives_nothing_and_all_padding_gives_zero(name):
    logits, target = batch(k=5, seed=6)
    module = randomized(METHODS[name](5, alpha=0.1))
    with torch.no_grad():
        logits[target == IGNORE] = float("nan")  # ignored positions may hold anything
    loss, g_logits, grads = ours_and_grads(module, logits, target)
    assert torch.isfinite(loss) and torch.isfinite(g_logits).all()
    assert torch.count_nonzero(g_logits[target == IGNORE]) == 0
    dense = ours_and_grads(module, logits[target != IGNORE], target[target != IGNORE])
    torch.testing.assert_close(loss, dense[0])
    torch.testing.assert_close(grads[0], dense[2][0])
    everything_ignored = torch.full_like(target, IGNORE)
    loss, g_logits, grads = ours_and_grads(module, logits, everything_ignored)
    assert float(loss) == 0.0 and torch.count_nonzero(g_logits) == 0
    assert all(torch.count_nonzero(g) == 0 for g in grads)
    assert float(module(logits, everything_ignored, ignore_index=IGNORE).detach()) == 0.0  # mean: 0, not NaN


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_logits_get_a_gradient_of_their_dtype(dtype):
    logits, target = batch(k=7, seed=8)
    module = randomized(LearnableLabelSmoothing(7))
    ref = ours_and_grads(module, logits, target)
    half = ours_and_grads(module, logits.detach().to(dtype), target)
    assert half[1].dtype == dtype
    torch.testing.assert_close(half[0], ref[0], rtol=2e-2, atol=2e-2)


def test_parts_log_the_learned_distributions_entropy_and_top_mass():
    k = 6
    lspp, lls = LabelSmoothingPlusPlus(k).train(), LearnableLabelSmoothing(k).train()
    logits, target = batch(k=k, seed=1)
    for module, support in ((lspp, k - 1), (lls, k)):  # zeros at init: uniform rows
        parts = module.parts(logits, target, ignore_index=IGNORE)
        n = int(parts.ntokens)
        sums = module.target_log_sums(target)
        name = module.NAME
        assert float(sums[f"{name}_entropy"]) == pytest.approx(n * math.log(support), rel=1e-6)
        assert float(sums[f"{name}_top_mass"]) == pytest.approx(n / support, rel=1e-6)
        assert module.log_values() == {f"{name}_entropy": pytest.approx(math.log(support)),
                                       f"{name}_top_mass": pytest.approx(1 / support)}
        ce = F.cross_entropy(logits.reshape(-1, k), target.reshape(-1), ignore_index=IGNORE, reduction="sum")
        assert float(parts.nll) == pytest.approx(float(ce.detach()), rel=1e-6)
        assert int(parts.ncorrect) == int(((logits.argmax(-1) == target) & (target != IGNORE)).sum())
    rows = randomized(LabelSmoothingPlusPlus(k)).learned_distribution()
    torch.testing.assert_close(rows.sum(-1), torch.ones(k))
    assert torch.count_nonzero(rows.diagonal()) == 0
    for module in (randomized(lspp), randomized(lls)):  # learned rows: the same numbers from the rows
        module.parts(logits, target, ignore_index=IGNORE)
        q = module.learned_distribution(target[target != IGNORE])
        entropy = -torch.xlogy(q, q).sum()
        sums = module.target_log_sums(target)
        torch.testing.assert_close(sums[f"{module.NAME}_entropy"], entropy, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(sums[f"{module.NAME}_top_mass"], q.amax(-1).sum(), rtol=1e-5, atol=1e-6)


def test_auto_form_and_memory_of_the_tables():
    assert isinstance(LearnableLabelSmoothing(100).table, FullTable)
    big = LearnableLabelSmoothing(5000)
    assert isinstance(big.table, FactoredTable) and big.table.rank == 64
    assert isinstance(LabelSmoothingPlusPlus(5000, full=True).table, FullTable)
    assert isinstance(LabelSmoothingPlusPlus(50, rank=8).table, FactoredTable)
    # the factored table starts uniform (v = 0) with u from a fixed seed: identical in every process
    a, b = LabelSmoothingPlusPlus(50, rank=8), LabelSmoothingPlusPlus(50, rank=8)
    assert torch.equal(a.table.u, b.table.u) and torch.count_nonzero(a.table.v) == 0


@pytest.mark.parametrize("name", sorted(METHODS))
def test_bad_input_is_refused_with_the_value(name):
    cls = METHODS[name]
    for alpha in (-0.1, 1.5, float("nan"), 0.0):
        with pytest.raises(ValueError, match="alpha must be in"):
            cls(5, alpha=alpha)
    if name == "lspp":
        with pytest.raises(ValueError, match=r"\(0, 1\) for LS\+\+"):
            cls(5, alpha=1.0)
    for rank in (0, -3, 2.5):
        with pytest.raises(ValueError, match=f"rank must be an integer >= 1, got {rank}"):
            cls(5, rank=rank)
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        cls(1)
    with pytest.raises(ValueError, match="logits have 6 classes"):
        cls(5)(torch.zeros(2, 6), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="saved .*table"):
        cls(5).load_state_dict(cls(6).state_dict())
    with pytest.raises(ValueError, match="rank 4"):
        cls(5, rank=4).load_state_dict(cls(5).state_dict())
    state = randomized(cls(5)).state_dict()
    fresh = cls(5)
    fresh.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), state.values()))


@pytest.mark.parametrize("name", sorted(METHODS))
def test_factored_table_trains_a_real_model_as_well_as_the_full_one(name):
    """scikit-learn's digits (1,797 8x8 images, 10 classes): an MLP trained with the full table
    and with a rank-4 one reaches the same held-out loss within 5% and accuracy within 2 points."""
    datasets = pytest.importorskip("sklearn.datasets")
    data = datasets.load_digits()
    x = torch.tensor(data.data, dtype=torch.float32) / 16.0
    y = torch.tensor(data.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    train, test = order[:1400], order[1400:]

    def fit(**table):
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
        loss_fn = METHODS[name](10, alpha=0.1, **table)
        opt = torch.optim.Adam([*model.parameters(), *loss_fn.parameters()], lr=0.01)
        for step in range(150):
            batch = train[(step * 100) % 1400:][:100]
            opt.zero_grad()
            loss_fn(model(x[batch]), y[batch]).backward()
            opt.step()
        with torch.no_grad():
            logits = model(x[test])
        moved = max(float(p.detach().abs().max()) for p in loss_fn.parameters() if p is not getattr(loss_fn.table, "u", None))
        return F.cross_entropy(logits, y[test]).item(), (logits.argmax(-1) == y[test]).float().mean().item(), moved

    nll_full, acc_full, moved_full = fit(full=True)
    nll_rank, acc_rank, moved_rank = fit(rank=4)
    assert acc_full > 0.9 and moved_full > 0 and moved_rank > 0
    assert nll_rank == pytest.approx(nll_full, rel=0.05)
    assert abs(acc_rank - acc_full) <= 0.02


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(METHODS))
def test_compiled_kernels_equal_the_eager_ones(name, monkeypatch):
    """``LABELREG_NLP_COMPILE=1`` (torch.compile of the per-chunk math): the loss and both
    gradients equal the eager kernels' at two alphas (a compiled graph must not keep the first
    alpha it saw) and over chunks of many classes, of one class and of one position."""
    logits, target = batch(k=9, seed=12)
    target[:6] = 4  # a run of one class: a chunk of one row at 2 rows per chunk
    module = randomized(METHODS[name](9, alpha=0.1))
    monkeypatch.setattr(logit_stats_module, "CHUNK_ELEMENTS", 4 * 2 * 9)
    monkeypatch.setattr(learned_module, "CHUNK_MIN_ROWS", 1)
    for alpha in (0.1, 0.3):
        module.alpha = alpha
        monkeypatch.delenv(learned_module.COMPILE_VARIABLE, raising=False)
        eager = ours_and_grads(module, logits, target)
        monkeypatch.setenv(learned_module.COMPILE_VARIABLE, "1")
        compiled = ours_and_grads(module, logits, target)
        assert not learned_module._compile_failed
        for a, b in zip(compiled, eager):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
