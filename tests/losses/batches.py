"""Padded token batches for the loss tests."""

import torch

IGNORE = -100


def batch(b=4, t=7, k=11, seed=0, dtype=torch.float32, scale=3.0):
    """Logits [b, t, k] (requires grad) and targets [b, t] with uneven -100 padding."""
    g = torch.Generator().manual_seed(seed)
    logits = (torch.randn(b, t, k, generator=g) * scale).to(dtype)
    target = torch.randint(0, k, (b, t), generator=g)
    target[0, 4:] = IGNORE  # uneven padding
    target[2, 1:] = IGNORE
    return logits.requires_grad_(), target


def grad(loss, x):
    (g,) = torch.autograd.grad(loss, x)
    return g
