"""Diagnostics of penultimate-layer features: class separation and a linear probe.

Class separation as in "Why Do Better Loss Functions Lead to Less Transferable Features?"
(Kornblith, Chen, Lee and Norouzi, arXiv 2010.16402), used by the MaxSup paper (Section 4,
Table 2). With cosine distance ``d(a, b) = 1 - a.b / (|a| |b|)`` over all pairs (a pair with
itself included):

    d_within = (1/K) sum_k mean_{m, n in class k} d(x_m, x_n)
    d_total  = (1/K^2) sum_{j, k} mean_{m in j, n in k} d(x_m, x_n)
    R^2      = 1 - d_within / d_total

With unit vectors ``u`` and class means ``c_k = mean_{n in k} u_n`` the means over pairs are
``1 - c_j . c_k``, so both take O(N d) instead of O(N^2 d). R^2 near 1: tight, separated classes
(less intra-class variation); lower: more variation kept within classes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ClassSeparation:
    d_within: float
    d_total: float
    r2: float


def class_separation(features: Tensor, labels: Tensor) -> ClassSeparation:
    """Mean within-class and total cosine distances, and ``R^2 = 1 - d_within / d_total``.

    Args:
        features: ``[N, d]``.
        labels: ``[N]`` class indices; classes with no row are left out.

    Returns:
        :class:`ClassSeparation` (float64 arithmetic).

    Example:
        >>> import torch
        >>> f = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]])  # two tight classes
        >>> sep = class_separation(f, torch.tensor([0, 0, 1, 1]))
        >>> sep.d_within, sep.d_total, sep.r2
        (0.0, 0.5, 1.0)
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(f"features must be [N, d] and labels [N], got {tuple(features.shape)} and {tuple(labels.shape)}")
    u = torch.nn.functional.normalize(features.double(), dim=1)
    classes, inverse = torch.unique(labels, return_inverse=True)
    if classes.numel() < 2:
        raise ValueError(f"class separation needs at least 2 classes, got {classes.numel()}")
    sums = torch.zeros(classes.numel(), u.size(1), dtype=u.dtype, device=u.device).index_add_(0, inverse, u)
    means = sums / torch.bincount(inverse, minlength=classes.numel()).to(u.dtype)[:, None]
    d_within = float((1 - (means * means).sum(-1)).mean())
    grand = means.mean(0)
    d_total = float(1 - grand @ grand)
    return ClassSeparation(d_within, d_total, 1 - d_within / d_total if d_total > 0 else float("nan"))


def linear_probe_accuracy(train_features: Tensor, train_labels: Tensor, test_features: Tensor,
                          test_labels: Tensor, *, weight_decay: float = 1e-4, steps: int = 200) -> float:
    """Accuracy on the test rows of a multinomial logistic regression fitted on frozen train
    features (standardized with the train statistics; L-BFGS, L2 penalty ``weight_decay``).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(200, 5, generator=g); y = (x[:, 0] > 0).long()
        >>> linear_probe_accuracy(x[:150], y[:150], x[150:], y[150:]) > 0.95
        True
    """
    mean, std = train_features.mean(0), train_features.std(0).clamp(min=1e-6)
    xtr = ((train_features - mean) / std).double()
    xte = ((test_features - mean) / std).double()
    k = int(max(train_labels.max(), test_labels.max())) + 1
    linear = torch.nn.Linear(xtr.size(1), k, dtype=torch.float64, device=xtr.device)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    optimizer = torch.optim.LBFGS(linear.parameters(), max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(xtr), train_labels) + weight_decay * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        optimizer.step(closure)
    with torch.no_grad():
        return float((linear(xte).argmax(-1) == test_labels).double().mean())


def pca_2d(features: Tensor) -> Tensor:
    """The first two principal components of the centred features ``[N, 2]``."""
    centred = features.double() - features.double().mean(0)
    _, _, v = torch.linalg.svd(centred, full_matrices=False)
    return centred @ v[:2].T
