"""Batched image augmentation that runs on whatever device the batch is on.

Perspective, rotation and random resized crop are all maps of the sampling grid, so their product
is one 3 x 3 matrix per image, and one ``grid_sample`` call warps the whole batch (see ``warp.py``).
Pad-crop and horizontal flip copy pixels by index. This replaces per-image PIL transforms, which
dominate the step time for 28 x 28 images.

The random parameters are drawn from the same distributions as torchvision's ``RandomPerspective``,
``RandomRotation``, ``RandomResizedCrop``, ``RandomCrop(padding=...)`` and
``RandomHorizontalFlip``, integer rounding included, so a recipe written with those transforms
keeps its meaning.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from spinal_lightning.data.warp import (
    pad_crop,
    perspective_matrices,
    resized_crop_matrices,
    rotation_matrices,
    warp,
)

# RandomResizedCrop.get_params tries this many draws before it falls back to a centre crop.
CROP_ATTEMPTS = 10


class BatchAugment(nn.Module):
    """Random pad-crop, perspective, rotation, resized crop and horizontal flip, per image, on a batch.

    The transforms apply in that order, each with its own random parameters per image, like a
    torchvision ``Compose`` of the matching transforms in that order.

    Args:
        rotation_degrees: maximum absolute rotation angle in degrees (like ``RandomRotation``).
        crop_scale: range of the crop area as a fraction of the image (like ``RandomResizedCrop``);
            ``None`` skips the crop.
        crop_ratio: range of the crop aspect ratio (width / height), sampled log-uniformly.
        hflip_probability: probability of a horizontal flip.
        perspective_distortion: ``distortion_scale`` of ``RandomPerspective``, in [0, 1]; 0 skips it.
        perspective_probability: probability that an image gets the perspective transform.
        pad_crop: zero padding in pixels before a random crop back to the input size (like
            ``RandomCrop(size, padding=pad_crop)``); 0 skips it.

    Pixels sampled from outside the image are 0, the fill value of torchvision's transforms.
    Inputs are float images of shape (N, C, H, W); the output has the same shape and dtype.

    Examples of the SpinalNet recipes: Fashion-MNIST is ``rotation_degrees=10,
    crop_scale=(0.95, 1)``; the other MNIST-style sets are ``perspective_distortion=0.5,
    rotation_degrees=10``; CIFAR is ``pad_crop=4, hflip_probability=0.5``.
    """

    def __init__(
        self,
        rotation_degrees: float = 0.0,
        crop_scale: tuple[float, float] | None = None,
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3),
        hflip_probability: float = 0.0,
        perspective_distortion: float = 0.0,
        perspective_probability: float = 0.5,
        pad_crop: int = 0,
    ) -> None:
        super().__init__()
        if rotation_degrees < 0:
            raise ValueError(f"rotation_degrees must be >= 0, got {rotation_degrees!r}.")
        if crop_scale is not None and not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {crop_scale!r}.")
        if not 0 < crop_ratio[0] <= crop_ratio[1]:
            raise ValueError(f"crop_ratio must satisfy 0 < low <= high, got {crop_ratio!r}.")
        if not 0 <= hflip_probability <= 1:
            raise ValueError(f"hflip_probability must be in [0, 1], got {hflip_probability!r}.")
        if not 0 <= perspective_distortion <= 1:
            raise ValueError(f"perspective_distortion must be in [0, 1], got {perspective_distortion!r}.")
        if not 0 <= perspective_probability <= 1:
            raise ValueError(f"perspective_probability must be in [0, 1], got {perspective_probability!r}.")
        if not isinstance(pad_crop, int) or isinstance(pad_crop, bool) or pad_crop < 0:
            raise ValueError(f"pad_crop must be an integer number of pixels >= 0, got {pad_crop!r}.")
        self.rotation_degrees = rotation_degrees
        self.crop_scale = crop_scale
        self.crop_ratio = crop_ratio
        self.hflip_probability = hflip_probability
        self.perspective_distortion = perspective_distortion
        self.perspective_probability = perspective_probability
        self.pad_crop = pad_crop

    @property
    def uses_perspective(self) -> bool:
        return self.perspective_distortion > 0 and self.perspective_probability > 0

    @property
    def warps(self) -> bool:
        """Whether any transform needs resampling (perspective, rotation or resized crop)."""
        return self.uses_perspective or self.rotation_degrees > 0 or self.crop_scale is not None

    def sample_matrices(
        self, batch_size: int, height: int, width: int, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Draw one sampling matrix per image, the product of perspective, rotation and crop, (N, 3, 3)."""
        matrices = torch.eye(3, device=device).repeat(batch_size, 1, 1)

        # Transforms applied to the image in the order P, R, C sample the input at P(R(C(p))), so
        # the matrices multiply in the same order.
        if self.uses_perspective:
            startpoints, endpoints = sample_perspective_points(
                batch_size, height, width, self.perspective_distortion, device, generator
            )
            perspective = perspective_matrices(startpoints, endpoints, height, width)
            applied = torch.rand(batch_size, device=device, generator=generator) < self.perspective_probability
            matrices = torch.where(applied.view(-1, 1, 1), perspective, matrices)
        if self.rotation_degrees > 0:
            angles = (torch.rand(batch_size, device=device, generator=generator) * 2 - 1) * self.rotation_degrees
            matrices = matrices @ rotation_matrices(angles)
        if self.crop_scale is not None:
            boxes = sample_resized_crop_boxes(
                batch_size, height, width, self.crop_scale, self.crop_ratio, device, generator
            )
            matrices = matrices @ resized_crop_matrices(boxes, height, width)
        return matrices

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Transform every image of ``images``, drawing from ``generator`` (on the images' device)."""
        batch_size, _, height, width = images.shape

        if self.pad_crop > 0:
            offsets = torch.randint(
                0, 2 * self.pad_crop + 1, (batch_size, 2), device=images.device, generator=generator
            )
            images = pad_crop(images, self.pad_crop, offsets)

        if self.warps:
            matrices = self.sample_matrices(batch_size, height, width, images.device, generator)
            images = warp(images, matrices, projective=self.uses_perspective)

        if self.hflip_probability > 0:
            flipped = torch.rand(batch_size, device=images.device, generator=generator) < self.hflip_probability
            images = torch.where(flipped.view(-1, 1, 1, 1), images.flip(-1), images)
        return images

    def extra_repr(self) -> str:
        return (
            f"rotation_degrees={self.rotation_degrees}, crop_scale={self.crop_scale}, "
            f"crop_ratio={self.crop_ratio}, hflip_probability={self.hflip_probability}, "
            f"perspective_distortion={self.perspective_distortion}, "
            f"perspective_probability={self.perspective_probability}, pad_crop={self.pad_crop}"
        )


def sample_resized_crop_boxes(
    batch_size: int,
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    device: torch.device,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw ``(top, left, crop_height, crop_width)`` per image as ``RandomResizedCrop.get_params`` does.

    Each image gets ``CROP_ATTEMPTS`` draws of area and log aspect ratio, rounded to whole pixels,
    and keeps the first that fits. An image where none fits gets the centre crop with the aspect
    ratio clamped to ``ratio``. Returns a float tensor of shape (N, 4).
    """
    shape = (batch_size, CROP_ATTEMPTS)
    area = height * width * (scale[0] + (scale[1] - scale[0]) * torch.rand(shape, device=device, generator=generator))
    log_low, log_high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(log_low + (log_high - log_low) * torch.rand(shape, device=device, generator=generator))
    crop_width = torch.round(torch.sqrt(area * aspect))
    crop_height = torch.round(torch.sqrt(area / aspect))

    fits = (crop_width > 0) & (crop_width <= width) & (crop_height > 0) & (crop_height <= height)
    first_fit = fits.int().argmax(dim=1, keepdim=True)  # 0 where nothing fits; replaced below
    any_fit = fits.any(dim=1)
    crop_width = crop_width.gather(1, first_fit).squeeze(1)
    crop_height = crop_height.gather(1, first_fit).squeeze(1)
    top = torch.floor(torch.rand(batch_size, device=device, generator=generator) * (height - crop_height + 1))
    left = torch.floor(torch.rand(batch_size, device=device, generator=generator) * (width - crop_width + 1))

    fallback_height, fallback_width = _centre_crop_size(height, width, ratio)
    crop_height = torch.where(any_fit, crop_height, float(fallback_height))
    crop_width = torch.where(any_fit, crop_width, float(fallback_width))
    top = torch.where(any_fit, top, float((height - fallback_height) // 2))
    left = torch.where(any_fit, left, float((width - fallback_width) // 2))
    return torch.stack([top, left, crop_height, crop_width], dim=1)


def _centre_crop_size(height: int, width: int, ratio: tuple[float, float]) -> tuple[int, int]:
    """Size of RandomResizedCrop's fallback crop: the whole image, cut to the nearest allowed ratio."""
    image_ratio = width / height
    if image_ratio < ratio[0]:
        return int(round(width / ratio[0])), width
    if image_ratio > ratio[1]:
        return height, int(round(height * ratio[1]))
    return height, width


def sample_perspective_points(
    batch_size: int,
    height: int,
    width: int,
    distortion: float,
    device: torch.device,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw corner points as ``RandomPerspective.get_params`` does: each corner moves inwards.

    Returns ``startpoints`` (4, 2), the image corners, and ``endpoints`` (N, 4, 2), where each
    corner lands, as (x, y) pixel positions in the order top-left, top-right, bottom-right,
    bottom-left. Each coordinate moves by a whole number of pixels, at most
    ``int(distortion * half_side)``.
    """
    max_dx = int(distortion * (width // 2))
    max_dy = int(distortion * (height // 2))
    dx = torch.randint(0, max_dx + 1, (batch_size, 4), device=device, generator=generator)
    dy = torch.randint(0, max_dy + 1, (batch_size, 4), device=device, generator=generator)

    # Corners on the right or bottom edge move left or up from width - 1 or height - 1.
    startpoints = torch.tensor([[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]], device=device)
    inward = torch.tensor([[1, 1], [-1, 1], [-1, -1], [1, -1]], device=device)
    endpoints = startpoints + inward * torch.stack([dx, dy], dim=2)
    return startpoints, endpoints
