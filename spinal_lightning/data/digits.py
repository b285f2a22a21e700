"""scikit-learn's bundled handwritten digits: 1,797 grey 8 x 8 images of 10 classes, no download.

A tiny offline data set for demos and tests. It comes without a test split, so a fixed, seeded
share of the images is held out as the test set before the validation set is carved from the rest.
"""

from __future__ import annotations

import torch

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.base import InMemoryImageDataModule, resolve_size

# load_digits() stores each pixel as a count of set bits in a 4 x 4 block, 0..16.
DIGITS_MAX_VALUE = 16


class DigitsDataModule(InMemoryImageDataModule):
    """scikit-learn's ``load_digits``: 8 x 8 grey images of the digits 0..9, held in memory.

    Args:
        test_size: images held out as the test set, a count or a fraction in (0, 1). They are
            drawn with ``split_seed + 1``, before and apart from the validation split.
        (the other arguments are those of ``InMemoryImageDataModule``; ``data_dir`` and
        ``download`` are unused, because scikit-learn ships the data)
    """

    name = "digits"
    num_classes = 10
    in_channels = 1
    image_size = (8, 8)
    mean = (0.3,)
    std = (0.38,)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 64,
        global_batch_size: int | None = None,
        val_size: int | float = 0.1,
        split_seed: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
        augmentation: BatchAugment | None = None,
        download: bool = False,
        seed: int | None = None,
        pipeline: str = "tensor",
        data_on_device: bool = False,
        imagenet_transforms: bool = False,
        image_size: int | None = None,
        test_size: int | float = 0.2,
    ) -> None:
        resolve_size(test_size, 1, "test_size")
        self.test_size = test_size
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            global_batch_size=global_batch_size,
            val_size=val_size,
            split_seed=split_seed,
            num_workers=num_workers,
            augment=augment,
            augmentation=augmentation,
            download=download,
            seed=seed,
            pipeline=pipeline,
            data_on_device=data_on_device,
            imagenet_transforms=imagenet_transforms,
            image_size=image_size,
        )

    def default_augmentation(self) -> BatchAugment:
        # One pixel of an 8 x 8 digit is an eighth of its width, so only a small shift and
        # rotation keep the digit readable.
        return BatchAugment(rotation_degrees=10.0, pad_crop=1)

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = torch.from_numpy(digits.images).float() * (255 / DIGITS_MAX_VALUE)
        images = pixels.round().to(torch.uint8).unsqueeze(1)
        labels = torch.from_numpy(digits.target).long()

        train_index, test_index = self.split_indices(len(labels), self.test_size, "test_size", offset=1)
        index = train_index if train else test_index
        return images[index].contiguous(), labels[index]
