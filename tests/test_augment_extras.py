"""Perspective distortion and whole-pixel shifts of BatchAugment."""

from __future__ import annotations

import pytest
import torch

from spinal_lightning.data import BatchAugment


def test_perspective_off_keeps_images():
    images = torch.rand(3, 1, 8, 8)
    augment = BatchAugment(perspective_distortion=0.5, perspective_probability=0.0)
    assert torch.allclose(augment(images), images, atol=1e-5)


def test_perspective_blanks_corners():
    images = torch.ones(16, 1, 28, 28)
    augment = BatchAugment(perspective_distortion=0.5, perspective_probability=1.0)
    torch.manual_seed(0)
    output = augment(images)

    # Corners move inward, so some border pixels sample outside the image (fill 0) while the
    # centre still shows the image.
    assert output[:, :, 0, :].mean() < 0.9
    assert torch.allclose(output[:, :, 14, 14], torch.ones(16, 1), atol=1e-3)


def test_shift_moves_whole_pixels():
    images = torch.arange(64.0).view(1, 1, 8, 8).repeat(32, 1, 1, 1)
    augment = BatchAugment(pad_crop=2)
    torch.manual_seed(0)
    output = augment(images)

    # Every output pixel is either a copied input value or the zero fill.
    assert torch.allclose(output, output.round(), atol=1e-4)
    assert set(output.round().unique().tolist()) <= set(range(64))
    assert not all(torch.equal(image, images[0]) for image in output)


@pytest.mark.parametrize("argument", ["perspective_distortion", "perspective_probability"])
def test_perspective_range_checked(argument):
    with pytest.raises(ValueError, match=f"{argument} must be in \\[0, 1\\]"):
        BatchAugment(**{argument: 1.5})
