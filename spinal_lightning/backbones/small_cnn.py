"""A small convolutional backbone for tiny images, such as scikit-learn's 8 x 8 digits."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class SmallCNN(nn.Module):
    """Blocks of two 3 x 3 convolutions (BatchNorm, ReLU), each block ending in 2 x 2 max pooling.

    With the default two blocks an 8 x 8 image leaves as 64 x 2 x 2, flattened to
    ``num_features = 256``. Inputs whose side is not 4 times a whole number are pooled to 2 x 2 by
    an adaptive average pool, so the width stays the same for any size of at least 4 pixels.

    Args:
        in_channels: channels of the input images.
        widths: output channels of each block.
    """

    def __init__(self, in_channels: int = 1, widths: Sequence[int] = (32, 64)) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")
        if not widths or any(width < 1 for width in widths):
            raise ValueError(f"widths must be a non-empty list of positive integers, got {widths!r}.")

        layers: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            for _ in range(2):
                layers += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.in_channels = in_channels
        self.num_features = channels * 4

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(images)).flatten(1)
