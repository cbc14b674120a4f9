"""Mixup and CutMix for the image script: mixed inputs and the soft targets ``[N, K]`` they imply.

As in timm's ``Mixup`` (batch mode): each batch is mixed with itself reversed, with one ``lam``
drawn from ``Beta(a, a)``; CutMix pastes a box of area ``1 - lam`` and corrects ``lam`` to the
pasted area. No label smoothing is folded into the targets: the method does its own.

Mixup: "mixup: Beyond Empirical Risk Minimization" (Zhang et al., arXiv 1710.09412);
CutMix: "CutMix: Regularization Strategy to Train Strong Classifiers with Localizable Features"
(Yun et al., arXiv 1905.04899).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class MixConfig:
    """Args:
        mixup_alpha: Beta parameter of Mixup (0: off).
        cutmix_alpha: Beta parameter of CutMix (0: off).
        prob: probability that a batch is mixed at all.
        switch_prob: with both on, probability of CutMix rather than Mixup.
    """

    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    prob: float = 1.0
    switch_prob: float = 0.5

    def __post_init__(self) -> None:
        for name in ("mixup_alpha", "cutmix_alpha"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        for name in ("prob", "switch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")

    @property
    def active(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)


def one_hot(target: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Class indices ``[N]`` as one-hot rows ``[N, K]``."""
    return torch.zeros(target.numel(), num_classes, dtype=dtype, device=target.device).scatter_(1, target[:, None], 1.0)


def cutmix_box(height: int, width: int, lam: float, generator: torch.Generator) -> tuple[int, int, int, int]:
    """A box ``(top, bottom, left, right)`` of about ``(1 - lam)`` of the image, its centre
    uniform and its sides clipped to the image (so the area may be smaller)."""
    ratio = (1.0 - lam) ** 0.5
    cut_h, cut_w = int(height * ratio), int(width * ratio)
    cy = int(torch.randint(0, height, (1,), generator=generator))
    cx = int(torch.randint(0, width, (1,), generator=generator))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, height)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, width)
    return top, bottom, left, right


def mix_batch(images: Tensor, target: Tensor, num_classes: int, config: MixConfig,
              generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """Mix a batch with its reverse.

    Args:
        images: ``[N, C, H, W]``.
        target: class indices ``[N]``.
        num_classes: K.
        config: which mixing, how strong.
        generator: a CPU generator (the draws are reproducible and resume with it).

    Returns:
        ``(images, soft_target [N, K])``; unmixed batches give one-hot targets.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
        >>> mixed, t = mix_batch(x, y, 5, MixConfig(mixup_alpha=0.8), g)
        >>> torch.allclose(t.sum(-1), torch.ones(4)), bool((t[:, 4] == 0).all())
        (True, True)
    """
    soft = one_hot(target, num_classes)
    if not config.active or float(torch.rand((), generator=generator)) >= config.prob:
        return images, soft
    use_cutmix = config.cutmix_alpha > 0 and (
        config.mixup_alpha == 0 or float(torch.rand((), generator=generator)) < config.switch_prob)
    a = config.cutmix_alpha if use_cutmix else config.mixup_alpha
    lam = _beta(a, generator)
    other = images.flip(0)
    if use_cutmix:
        h, w = images.shape[-2:]
        top, bottom, left, right = cutmix_box(h, w, lam, generator)
        images = images.clone()
        images[..., top:bottom, left:right] = other[..., top:bottom, left:right]
        lam = 1.0 - (bottom - top) * (right - left) / (h * w)
    else:
        images = lam * images + (1.0 - lam) * other
    return images, lam * soft + (1.0 - lam) * soft.flip(0)


def _beta(a: float, generator: torch.Generator) -> float:
    """One draw of ``Beta(a, a)`` from ``generator`` (two Gamma draws; torch's Beta takes no generator)."""
    x = torch._standard_gamma(torch.tensor([a, a], dtype=torch.float64), generator=generator)
    return float(x[0] / x.sum())
