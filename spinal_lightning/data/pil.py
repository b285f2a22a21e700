"""The per-sample torchvision pipeline: PIL images through ``torchvision.transforms``.

This is how the SpinalNet reference scripts and most PyTorch examples feed images. It stays as an
option (``pipeline: pil``) to compare against the batched on-device path and to reproduce such
scripts. ``build_pil_transform`` translates a ``BatchAugment`` into the equivalent transforms.
"""

from __future__ import annotations

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms

from spinal_lightning.data.augment import BatchAugment


def build_pil_transform(
    augmentation: BatchAugment | None,
    image_size: tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
) -> transforms.Compose:
    """Return the torchvision transforms that do what ``augmentation`` does, then ToTensor + Normalize.

    The order and the parameter distributions are those of ``BatchAugment``. Rotation and
    perspective use bilinear interpolation like the batched path.
    """
    steps = []
    if augmentation is not None:
        if augmentation.pad_crop > 0:
            steps.append(transforms.RandomCrop(image_size, padding=augmentation.pad_crop))
        if augmentation.uses_perspective:
            steps.append(
                transforms.RandomPerspective(
                    augmentation.perspective_distortion,
                    p=augmentation.perspective_probability,
                    interpolation=transforms.InterpolationMode.BILINEAR,
                )
            )
        # NOTE: RandomRotation defaults to nearest-neighbour interpolation, which the SpinalNet
        # scripts keep. Bilinear here matches the batched path, so the two pipelines differ only in
        # where they run.
        if augmentation.rotation_degrees > 0:
            steps.append(
                transforms.RandomRotation(
                    augmentation.rotation_degrees, interpolation=transforms.InterpolationMode.BILINEAR
                )
            )
        if augmentation.crop_scale is not None:
            steps.append(
                transforms.RandomResizedCrop(image_size, scale=augmentation.crop_scale, ratio=augmentation.crop_ratio)
            )
        if augmentation.hflip_probability > 0:
            steps.append(transforms.RandomHorizontalFlip(augmentation.hflip_probability))
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


class PILImageDataset(Dataset):
    """uint8 images (N, C, H, W) served one by one as PIL images through ``transform``.

    ``transform`` receives a PIL image (mode "L" for one channel, "RGB" for three) and must return
    a tensor, so every batch reaches the model already normalised as float32.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform: transforms.Compose) -> None:
        if images.shape[1] not in (1, 3):
            raise ValueError(
                f"The PIL pipeline handles 1 or 3 channels, got images of shape {tuple(images.shape)}; "
                "use pipeline: tensor."
            )
        # Height-width-channel arrays, the layout PIL reads; done once, not per sample.
        self.arrays = images.permute(0, 2, 3, 1).numpy()
        self.labels = labels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        array = self.arrays[index]
        image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
        return self.transform(image), self.labels[index]
