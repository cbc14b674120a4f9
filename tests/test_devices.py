"""The core on every device: CPU always, CUDA when present (``device`` fixture, tests/conftest.py).

Each method's loss per position against the float64 formulas, its gradients (logits and learned
tables) against our own float64 CPU run, the fused output layer against the logits path, OLS
state over two periods, bfloat16/float16 logits, all-padding batches and the confidence metrics,
on each device. On CUDA also the host syncs of one training step, counted with
``torch.cuda.set_sync_debug_mode``.
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from labelreg_nlp import TokenLoss
from labelreg_nlp.losses.fused_linear import fused_linear_parts
from labelreg_nlp.metrics import ScoredPredictions, evaluate_confidence
from tests.losses.batches import IGNORE, batch
from tests.losses.test_properties import build, reference

METHODS = ("none", "ls", "ls-fairseq", "maxsup", "ols", "ols-sparse", "lspp", "lls")
K = 11


def on(device: torch.device, loss: TokenLoss) -> TokenLoss:
    return copy.deepcopy(loss).to(device)


def step(loss: TokenLoss, logits: torch.Tensor, target: torch.Tensor):
    """Loss per position, and the gradients of their sum for the logits and the loss's parameters."""
    z = logits.detach().clone().requires_grad_()
    per_position = loss.parts(z, target, keep_per_position=True).per_position
    params = list(loss.parameters())
    grads = torch.autograd.grad(per_position.sum(), [z, *params])
    return per_position.detach(), grads


@pytest.mark.parametrize("method", METHODS)
def test_loss_per_position_equals_the_formulas(method, device):
    logits, target = batch(k=K, seed=5)
    loss = build(method, K, seed=5)
    logits, target = logits.detach().flatten(0, 1), target.flatten()
    expected = reference(copy.deepcopy(loss), method, logits, target)
    ours, _ = step(on(device, loss), logits.to(device), target.to(device))
    assert ours.device.type == device.type
    torch.testing.assert_close(ours.cpu().double(), expected, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("method", METHODS)
def test_gradients_equal_the_float64_cpu_run(method, device):
    """Logits and (LS++/LLS) table gradients on the device, float32, against float64 on the CPU."""
    logits, target = batch(k=K, seed=6)
    loss = build(method, K, seed=6)
    _, ours = step(on(device, loss), logits.to(device), target.to(device))
    _, exact = step(copy.deepcopy(loss).double(), logits.double(), target)
    assert len(ours) == len(exact)
    for a, b in zip(ours, exact):
        torch.testing.assert_close(a.cpu().double(), b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_fused_output_layer_equals_the_logits_path(method, device):
    g = torch.Generator().manual_seed(7)
    hidden = torch.randn(40, 8, generator=g).to(device).requires_grad_()
    weight = torch.randn(K, 8, generator=g).to(device).requires_grad_()
    target = torch.randint(0, K, (40,), generator=g).to(device)
    target[::7] = IGNORE
    loss = on(device, build(method, K, seed=7))
    plain = loss.method_loss.parts(hidden @ weight.T, target, ignore_index=IGNORE)
    fused = fused_linear_parts(hidden, weight, target, loss.method_loss, ignore_index=IGNORE, chunk_rows=16)
    torch.testing.assert_close(fused.loss, plain.loss, rtol=1e-5, atol=1e-5)
    for a, b in zip(torch.autograd.grad(fused.loss, (hidden, weight)), torch.autograd.grad(plain.loss, (hidden, weight))):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("topk", [None, 3])
def test_ols_soft_labels_over_two_periods_equal_the_cpus(topk, device):
    g = torch.Generator().manual_seed(8)
    batches = [(torch.randn(30, K, generator=g) * 3, torch.randint(0, K, (30,), generator=g)) for _ in range(4)]
    states = []
    for where in (torch.device("cpu"), device):
        loss = TokenLoss("ols", num_classes=K, ols_topk=topk, **({"ols_dense": True} if topk is None else {})).to(where)
        for i, (z, y) in enumerate(batches):
            loss(z.to(where).requires_grad_(), y.to(where)).backward()
            if i % 2 == 1:
                loss.end_period()
        states.append({key: value.cpu() for key, value in loss.state_dict().items()})
    assert states[0].keys() == states[1].keys()
    for key in states[0]:
        torch.testing.assert_close(states[1][key], states[0][key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("method", METHODS)
def test_half_precision_logits(method, dtype, device):
    """The loss of half-precision logits is the float32 loss of the same (rounded) numbers, and
    their gradient has their dtype."""
    logits, target = batch(k=K, seed=9)
    half = logits.detach().to(dtype)
    loss = on(device, build(method, K, seed=9))
    z = half.to(device).requires_grad_()
    value = loss(z, target.to(device))
    value.backward()
    assert z.grad.dtype == dtype and bool(torch.isfinite(z.grad).all())
    torch.testing.assert_close(value.float(), loss(half.float().to(device), target.to(device)).float(),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("method", METHODS)
def test_all_padding_gives_zero_loss_and_zero_gradients(method, device):
    logits, target = batch(k=K, seed=10)
    loss = on(device, build(method, K, seed=10))
    loss.train()
    z = logits.detach().to(device).requires_grad_()
    value = loss(z, torch.full_like(target, IGNORE).to(device))
    value.backward()
    assert float(value.detach()) == 0.0 and bool((z.grad == 0).all())


def test_confidence_metrics_equal_the_cpus(device):
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(300, K, generator=g) * 2
    labels = torch.randint(0, K, (300,), generator=g)
    cpu = evaluate_confidence(ScoredPredictions.from_logits(logits, labels)).as_dict()
    ours = evaluate_confidence(ScoredPredictions.from_logits(logits.to(device), labels.to(device))).as_dict()
    assert ours.keys() == cpu.keys()
    for key in cpu:
        if isinstance(cpu[key], float):
            assert ours[key] == pytest.approx(cpu[key], rel=1e-5, abs=1e-7), key


#: host syncs in one training step (forward + backward, validate_args=False) of each method on
#: CUDA, and why: torch.nonzero in the padding mask (an output of data-dependent size) for every
#: method; OLS's accumulation of the correct rows (nonzero); LS++/LLS: the sort of the targets is
#: on the device, but torch.unique_consecutive (the classes of a chunk) and the check for
#: positions without upstream gradient sync once per chunk in each direction.
SYNCS_PER_STEP = {"none": 1, "ls": 1, "ls-fairseq": 1, "maxsup": 1, "ols": 3, "ols-sparse": 3, "lspp": 5, "lls": 5}


@pytest.mark.parametrize("method", METHODS)
def test_host_syncs_per_training_step_on_cuda(method, device):
    if device.type != "cuda":
        pytest.skip("torch.cuda.set_sync_debug_mode counts syncs on CUDA only")
    logits, target = batch(k=K, seed=12)
    loss = on(device, build(method, K, seed=12)).train()
    loss.method_loss.validate_args = False
    z, y = logits.detach().to(device).requires_grad_(), target.to(device)
    loss(z, y).backward()  # warm-up: first-call allocations and lazy initialisation
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            loss(z, y).backward()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = sum("synchroniz" in str(w.message) for w in caught)
    assert syncs <= SYNCS_PER_STEP[method], (syncs, [str(w.message)[:120] for w in caught])
