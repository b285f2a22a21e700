"""Per-image torchvision transforms for data read from image files (image folders, Caltech-101).

The defaults follow the SpinalNet transfer-learning recipe for ImageNet-pretrained backbones.
Training images are resized, rotated by up to 15 degrees, randomly cropped and flipped. Evaluation
images are resized and centre-cropped. Both are normalised with the ImageNet mean and std.
"""

from __future__ import annotations

import torch
from torchvision.transforms import v2

from spinal_lightning.data.base import imagenet_statistics


class ImageTransforms:
    """Training and evaluation pipelines for PIL images, configurable from YAML.

    Args:
        image_size: side in pixels of the square images the model receives.
        resize_size: shorter side the image is resized to before cropping; ``None`` uses
            ``image_size * 256 / 224``, the ratio of torchvision's ImageNet evaluation transforms.
        rotation_degrees: maximum absolute random rotation in degrees during training.
        hflip_probability: probability of a horizontal flip during training.
        mean: per-channel mean for normalisation; ``None`` uses ImageNet's.
        std: per-channel standard deviation for normalisation; ``None`` uses ImageNet's.
    """

    def __init__(
        self,
        image_size: int = 224,
        resize_size: int | None = None,
        rotation_degrees: float = 15.0,
        hflip_probability: float = 0.5,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        if image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels, got {image_size!r}.")
        if resize_size is None:
            resize_size = round(image_size * 256 / 224)
        if resize_size < image_size:
            raise ValueError(
                f"resize_size={resize_size} is smaller than image_size={image_size}; the crop "
                "needs an image at least as large as itself."
            )
        if (mean is None) != (std is None):
            raise ValueError("Set both mean and std, or neither (for the ImageNet statistics).")
        self.image_size = image_size
        self.resize_size = resize_size
        self.rotation_degrees = rotation_degrees
        self.hflip_probability = hflip_probability
        self.mean = tuple(mean) if mean is not None else None
        self.std = tuple(std) if std is not None else None

    def statistics(self, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Return the (mean, std) for images with ``channels`` channels."""
        if self.mean is None:
            return imagenet_statistics(channels)
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"mean {self.mean} and std {self.std} must have one value per channel, and the "
                f"images have {channels}."
            )
        return self.mean, self.std

    def build(self, train: bool, channels: int) -> v2.Compose:
        """Return the training (random) or evaluation (deterministic) pipeline."""
        mean, std = self.statistics(channels)
        steps: list = [v2.ToImage(), v2.Resize(self.resize_size, antialias=True)]
        if train:
            steps += [
                v2.RandomRotation(self.rotation_degrees),
                v2.RandomCrop(self.image_size),
                v2.RandomHorizontalFlip(self.hflip_probability),
            ]
        else:
            steps.append(v2.CenterCrop(self.image_size))
        steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)]
        return v2.Compose(steps)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(image_size={self.image_size}, resize_size={self.resize_size}, "
            f"rotation_degrees={self.rotation_degrees}, hflip_probability={self.hflip_probability}, "
            f"mean={self.mean}, std={self.std})"
        )
