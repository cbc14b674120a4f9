"""Feature diagnostics against brute force and hand-built features with known answers."""

from __future__ import annotations

import pytest
import torch

from labelreg_nlp.metrics.features import class_separation, linear_probe_accuracy, pca_2d


def brute_force(features, labels):
    u = torch.nn.functional.normalize(features.double(), dim=1)
    d = 1 - u @ u.T
    classes = labels.unique()
    within = torch.stack([d[labels == k][:, labels == k].mean() for k in classes]).mean()
    total = torch.stack([d[labels == j][:, labels == k].mean() for j in classes for k in classes]).mean()
    return float(within), float(total)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_form_equals_the_mean_over_pairs(seed):
    g = torch.Generator().manual_seed(seed)
    features = torch.randn(60, 8, generator=g) + 0.5
    labels = torch.randint(0, 4, (60,), generator=g)  # unequal class sizes
    sep = class_separation(features, labels)
    within, total = brute_force(features, labels)
    assert sep.d_within == pytest.approx(within, rel=1e-12)
    assert sep.d_total == pytest.approx(total, rel=1e-12)
    assert sep.r2 == pytest.approx(1 - within / total, rel=1e-12)


def test_two_tight_clusters_give_r2_near_one_and_random_labels_near_zero():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    labels = torch.arange(200) % 2
    tight = centres[labels] * 5 + 0.01 * torch.randn(200, 3, generator=g)
    assert class_separation(tight, labels).r2 > 0.999
    noise = torch.randn(2000, 64, generator=g)
    assert abs(class_separation(noise, torch.randint(0, 5, (2000,), generator=g)).r2) < 0.01
    # more spread inside the classes, same centres: lower R^2
    loose = centres[labels] * 5 + 2.0 * torch.randn(200, 3, generator=g)
    assert class_separation(loose, labels).r2 < class_separation(tight, labels).r2 - 0.2


def test_class_separation_rejects_bad_shapes():
    with pytest.raises(ValueError, match="at least 2 classes, got 1"):
        class_separation(torch.randn(4, 3), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"features must be \[N, d\] and labels \[N\]"):
        class_separation(torch.randn(4, 3), torch.zeros(5, dtype=torch.long))


def test_linear_probe_separable_and_unlearnable():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    y = (x[:, :2].sum(-1) > 0).long() + 2 * (x[:, 2] > 0).long()  # 4 linearly separable classes
    assert linear_probe_accuracy(x[:300], y[:300], x[300:], y[300:]) >= 0.95
    noise_labels = torch.randint(0, 4, (400,), generator=g)
    assert linear_probe_accuracy(x[:300], noise_labels[:300], x[300:], noise_labels[300:]) < 0.45


def test_pca_2d_finds_the_largest_variance_directions():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 4, generator=g) * torch.tensor([0.1, 5.0, 0.2, 2.0])
    p = pca_2d(x)
    assert p.shape == (500, 2)
    assert float(p[:, 0].var()) == pytest.approx(float(x[:, 1].double().var()), rel=0.05)
    assert float(p[:, 1].var()) == pytest.approx(float(x[:, 3].double().var()), rel=0.05)
    assert abs(float(p[:, 0] @ p[:, 1])) < 1e-6 * float(p.norm() ** 2)
