"""Batched augmentation against torchvision: same output for fixed parameters, same distributions."""

import math

import pytest
import torch
import torchvision.transforms.functional as TF
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from spinal_lightning.data.augment import BatchAugment, sample_perspective_points, sample_resized_crop_boxes
from spinal_lightning.data.warp import pad_crop, perspective_matrices, resized_crop_matrices, rotation_matrices, warp

BILINEAR = InterpolationMode.BILINEAR


@pytest.fixture
def images() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.rand(3, 2, 28, 28, generator=generator)


@pytest.mark.parametrize("angle", [10.0, -7.5, 3.0, 90.0])
@pytest.mark.parametrize("projective", [False, True])
def test_rotation_matches_torchvision(images, angle, projective):
    matrices = rotation_matrices(torch.full((len(images),), angle))

    output = warp(images, matrices, projective=projective)

    expected = TF.rotate(images, angle, interpolation=BILINEAR)
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


def test_rotation_of_non_square_image_matches_torchvision():
    images = torch.rand(2, 3, 20, 32, generator=torch.Generator().manual_seed(1))

    output = warp(images, rotation_matrices(torch.tensor([8.0, -8.0])), projective=False)

    expected = torch.stack([TF.rotate(images[0], 8.0, BILINEAR), TF.rotate(images[1], -8.0, BILINEAR)])
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("box", [(2, 1, 26, 27), (0, 0, 28, 28), (5, 3, 14, 20)])
def test_resized_crop_matches_torchvision_inside_border(images, box):
    top, left, height, width = box
    matrices = resized_crop_matrices(torch.tensor([box] * len(images), dtype=torch.float32), 28, 28)

    output = warp(images, matrices, projective=False)

    expected = TF.resized_crop(images, top, left, height, width, [28, 28], BILINEAR, antialias=False)
    # torchvision resizes the cut-out crop, so its outermost output pixels repeat the crop's edge,
    # whereas sampling the whole image blends in the pixels just outside the crop.
    torch.testing.assert_close(output[..., 1:-1, 1:-1], expected[..., 1:-1, 1:-1], atol=1e-5, rtol=0)
    assert (output - expected).abs().max() < 0.5


@pytest.mark.parametrize(
    "endpoints",
    [
        [[3, 2], [25, 1], [27, 24], [1, 26]],
        [[0, 0], [27, 0], [27, 27], [0, 27]],
        [[7, 7], [20, 0], [27, 20], [6, 21]],
    ],
)
def test_perspective_matches_torchvision(images, endpoints):
    startpoints = [[0, 0], [27, 0], [27, 27], [0, 27]]
    matrices = perspective_matrices(torch.tensor(startpoints), torch.tensor([endpoints] * len(images)), 28, 28)

    output = warp(images, matrices, projective=True)

    expected = TF.perspective(images, startpoints, endpoints, interpolation=BILINEAR)
    torch.testing.assert_close(output, expected, atol=1e-4, rtol=0)


def test_pad_crop_equals_torchvision_exactly():
    images = torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    offsets = torch.tensor([[0, 0], [3, 7], [8, 8]])

    output = pad_crop(images, 4, offsets)

    for index, (top, left) in enumerate(offsets.tolist()):
        expected = TF.crop(TF.pad(images[index], [4]), top, left, 32, 32)
        assert torch.equal(output[index], expected)


def test_hflip_always_equals_flip(images):
    output = BatchAugment(hflip_probability=1.0)(images)

    assert torch.equal(output, images.flip(-1))


def test_no_transform_returns_input(images):
    assert BatchAugment()(images) is images


def test_output_keeps_shape_and_dtype(images):
    augment = BatchAugment(rotation_degrees=10, crop_scale=(0.5, 1), perspective_distortion=0.5, pad_crop=2)

    output = augment(images.double())

    assert output.shape == images.shape
    assert output.dtype == torch.float64


def test_crop_boxes_follow_torchvision_distribution():
    torch.manual_seed(0)
    count = 4000
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)

    ours = sample_resized_crop_boxes(count, 28, 28, scale, ratio, torch.device("cpu"))
    theirs = torch.tensor(
        [transforms.RandomResizedCrop.get_params(torch.empty(1, 28, 28), scale, ratio) for _ in range(count)]
    )

    # Whole pixels, inside the image, like torchvision's boxes.
    assert torch.equal(ours, ours.round())
    assert (ours[:, 0] + ours[:, 2]).max() <= 28
    assert (ours[:, 1] + ours[:, 3]).max() <= 28
    # Means agree within about four standard errors for top, left, height and width.
    tolerance = 4 * theirs.float().std(dim=0) / math.sqrt(count) * math.sqrt(2)
    difference = (ours.mean(dim=0) - theirs.float().mean(dim=0)).abs()
    assert (difference < tolerance).all(), (ours.mean(dim=0), theirs.float().mean(dim=0))


def test_narrow_crop_scale_uses_torchvision_fallback():
    torch.manual_seed(0)
    # With scale (0.95, 1) on 28 x 28 most draws do not fit; the full image is the fallback.
    ours = sample_resized_crop_boxes(4000, 28, 28, (0.95, 1.0), (3 / 4, 4 / 3), torch.device("cpu"))
    theirs = torch.tensor(
        [
            transforms.RandomResizedCrop.get_params(torch.empty(1, 28, 28), (0.95, 1.0), (3 / 4, 4 / 3))
            for _ in range(4000)
        ]
    )

    ours_full = (ours[:, 2:] == 28).all(dim=1).float().mean()
    theirs_full = (theirs[:, 2:] == 28).all(dim=1).float().mean()
    assert abs(ours_full - theirs_full) < 0.04
    assert set(ours[:, 2].tolist()) == set(theirs[:, 2].float().tolist())


def test_perspective_points_follow_torchvision_distribution():
    torch.manual_seed(0)
    count = 3000

    startpoints, ours = sample_perspective_points(count, 28, 28, 0.5, torch.device("cpu"))
    pairs = [transforms.RandomPerspective.get_params(28, 28, 0.5) for _ in range(count)]
    theirs = torch.tensor([end for _, end in pairs], dtype=torch.float32)

    assert startpoints.tolist() == pairs[0][0]
    assert torch.equal(ours.amin(dim=0), theirs.amin(dim=0).long())
    assert torch.equal(ours.amax(dim=0), theirs.amax(dim=0).long())
    tolerance = 4 * theirs.std(dim=0) / math.sqrt(count) * math.sqrt(2)
    assert ((ours.float().mean(dim=0) - theirs.mean(dim=0)).abs() < tolerance).all()


def test_rotation_angles_are_uniform_in_range():
    torch.manual_seed(0)
    matrices = BatchAugment(rotation_degrees=10).sample_matrices(4000, 28, 28, torch.device("cpu"))

    angles = torch.rad2deg(torch.atan2(matrices[:, 1, 0], matrices[:, 0, 0]))

    assert angles.min() >= -10
    assert angles.max() <= 10
    assert angles.min() < -9.9
    assert angles.max() > 9.9
    assert abs(angles.mean()) < 0.3
    assert abs(angles.std() - 10 / math.sqrt(3)) < 0.2  # the std of a uniform on [-10, 10]


def test_pad_crop_shifts_are_uniform():
    torch.manual_seed(0)
    images = torch.zeros(4000, 1, 16, 16)
    images[:, 0, 8, 8] = 1.0

    output = BatchAugment(pad_crop=4)(images)

    positions = output.flatten(1).argmax(dim=1)
    shifts = torch.stack([positions // 16 - 8, positions % 16 - 8], dim=1)
    counts = torch.unique(shifts, dim=0, return_counts=True)[1]
    assert len(counts) == 81  # every shift in [-4, 4] x [-4, 4]
    # About 49 each.
    assert counts.min() > 20
    assert counts.max() < 90


def test_perspective_probability_leaves_share_of_images_unchanged(images):
    torch.manual_seed(0)
    batch = images[:1].repeat(400, 1, 1, 1)

    output = BatchAugment(perspective_distortion=0.5, perspective_probability=0.5)(batch)

    unchanged = ((output - batch).flatten(1).abs().amax(dim=1) < 1e-5).float().mean()
    # Half skip the transform (all eight corner shifts being 0 has odds of 8 ** -8).
    assert 0.42 < unchanged < 0.6


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"rotation_degrees": -1}, "rotation_degrees"),
        ({"crop_scale": (0.5, 1.5)}, "crop_scale"),
        ({"crop_ratio": (2.0, 1.0)}, "crop_ratio"),
        ({"hflip_probability": 1.5}, "hflip_probability"),
        ({"perspective_distortion": 2.0}, "perspective_distortion"),
        ({"perspective_probability": -0.1}, "perspective_probability"),
        ({"pad_crop": -4}, "pad_crop"),
        ({"pad_crop": 2.5}, "pad_crop"),
    ],
)
def test_invalid_arguments_are_rejected(arguments, message):
    with pytest.raises(ValueError, match=message):
        BatchAugment(**arguments)
