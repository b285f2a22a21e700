"""VGG-5, the SpinalNet paper's convolutional backbone for 28 x 28 grey images."""

from __future__ import annotations

import math

import torch
from torch import nn

# Channel widths of the four blocks; each block ends in 2 x 2 max pooling, so 28 x 28 becomes 1 x 1.
VGG5_BLOCKS: tuple[tuple[int, ...], ...] = ((64, 64), (128, 128), (256, 256, 256), (256, 256, 256))


class VGG5(nn.Module):
    """Four blocks of 3 x 3 convolution + BatchNorm2d + ReLU, each block ending in 2 x 2 max pooling.

    A 28 x 28 input leaves the last block as 256 x 1 x 1, which ``forward`` flattens to
    ``num_features = 256``. Larger inputs are pooled to 1 x 1 by an adaptive average pool, so the
    feature width stays 256.

    Args:
        in_channels: channels of the input images (1 for the MNIST family).
    """

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be a positive integer, got {in_channels!r}.")

        layers: list[nn.Module] = []
        channels = in_channels
        for block in VGG5_BLOCKS:
            for width in block:
                layers += [
                    nn.Conv2d(channels, width, kernel_size=3, padding=1),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.in_channels = in_channels
        self.num_features = channels

        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw conv weights from N(0, sqrt(2 / (k * k * out_channels))) and reset BatchNorm to 1 and 0.

        This is He initialisation over the fan-out, the scheme the VGG-5 reference uses.
        """
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
                nn.init.normal_(module.weight, mean=0.0, std=math.sqrt(2.0 / fan_out))
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.pool(self.features(images)).flatten(1)
