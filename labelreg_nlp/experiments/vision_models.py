"""Small image classifiers in plain PyTorch (no torchvision), each exposing its penultimate
features for the diagnostics: ``model.features(x)`` ``[N, d]`` and ``model.head`` (a Linear).

* :class:`SmallResNet`: three stages of basic residual blocks ("Deep Residual Learning for Image
  Recognition", He et al., arXiv 1512.03385), global average pooling, a linear head;
* :class:`SmallViT`: patch embedding, pre-norm transformer blocks, class token ("An Image is Worth
  16x16 Words", Dosovitskiy et al., arXiv 2010.11929).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class BasicBlock(nn.Module):
    """Two 3 x 3 convolutions with batch norm and a shortcut (1 x 1 when the shape changes)."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet for small images: widths ``(w, 2w, 4w)``, ``blocks`` per stage, strides 1, 2, 2.

    Args:
        in_channels: 1 (grey) or 3.
        num_classes: K.
        width: channels of the first stage.
        blocks: basic blocks per stage.

    Example:
        >>> import torch
        >>> model = SmallResNet(1, 10, width=8, blocks=1)
        >>> model(torch.rand(2, 1, 28, 28)).shape, model.features(torch.rand(2, 1, 28, 28)).shape
        (torch.Size([2, 10]), torch.Size([2, 32]))
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 32, blocks: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        layers, c = [], width
        for stage, stride in enumerate((1, 2, 2)):
            c_out = width * 2 ** stage
            for i in range(blocks):
                layers.append(BasicBlock(c, c_out, stride if i == 0 else 1))
                c = c_out
        self.stages = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``[N, 4 * width]`` (after global average pooling)."""
        return self.stages(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class SmallViT(nn.Module):
    """A small Vision Transformer; the class token's final norm is the feature.

    Args:
        in_channels: 1 or 3.
        num_classes: K.
        image_size: side of the (square) input.
        patch: side of a patch (must divide ``image_size``).
        dim, depth, heads: transformer width, blocks and attention heads.

    Example:
        >>> import torch
        >>> SmallViT(1, 10, image_size=28, patch=7, dim=32, depth=1, heads=2)(torch.rand(2, 1, 28, 28)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int = 28, patch: int = 4,
                 dim: int = 128, depth: int = 4, heads: int = 4) -> None:
        super().__init__()
        if image_size % patch:
            raise ValueError(f"patch {patch} does not divide the image size {image_size}")
        n = (image_size // patch) ** 2
        self.embed = nn.Conv2d(in_channels, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, 4 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1) + self.pos
        return self.norm(self.blocks(tokens)[:, 0])

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


MODELS = ("resnet", "vit")


def build_model(name: str, in_channels: int, num_classes: int, image_size: int, width: int) -> nn.Module:
    """``resnet`` (``width`` = first-stage channels) or ``vit`` (``width`` = embedding size)."""
    if name == "resnet":
        return SmallResNet(in_channels, num_classes, width=width)
    if name == "vit":
        patch = 4 if image_size % 4 == 0 else 2 if image_size % 2 == 0 else 1
        return SmallViT(in_channels, num_classes, image_size=image_size, patch=patch, dim=width,
                        heads=max(1, width // 32))
    raise ValueError(f"model must be one of {MODELS}, got {name!r}")
