"""SVHN: house-number digits, 73,257 training and 26,032 test colour images, 32 x 32, in memory.

The files are the MATLAB ``.mat`` files torchvision downloads into ``data_dir`` itself:
``train_32x32.mat``, ``test_32x32.mat`` and optionally ``extra_32x32.mat`` (531,131 more
training images).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.base import InMemoryImageDataModule
from spinal_lightning.data.cifar import transfer_augmentation
from spinal_lightning.data.download import download_with_torchvision
from spinal_lightning.errors import CorruptDataError, DataNotFoundError


def read_svhn_mat(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an SVHN ``.mat`` file into (images uint8 (N, 3, 32, 32), labels 0..9).

    The files store images as (32, 32, 3, N) and the digit 0 as label 10.
    """
    import scipy.io

    try:
        content = scipy.io.loadmat(path)
        images = np.ascontiguousarray(np.transpose(content["X"], (3, 2, 0, 1)), dtype=np.uint8)
        labels = np.asarray(content["y"], dtype=np.int64).reshape(-1)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise CorruptDataError(
            f"Cannot read the SVHN file {str(path)!r}: {error!r}. Delete it and get the data again "
            "(data.download: true)."
        ) from error
    if len(images) != len(labels):
        raise CorruptDataError(
            f"{str(path)!r} contains {len(images)} images but {len(labels)} labels; delete it and get "
            "the data again."
        )
    labels[labels == 10] = 0
    return torch.from_numpy(images), torch.from_numpy(labels)


class SVHNDataModule(InMemoryImageDataModule):
    """SVHN: 10 digit classes of 32 x 32 colour images.

    The default augmentation is a random crop with 4 pixels of padding, without flips (a mirrored
    digit is another symbol). With ``imagenet_transforms`` it is rotation(15) and random crop.

    Args:
        include_extra: add the 531,131 images of ``extra_32x32.mat`` to the training set.
        (the other arguments are those of ``InMemoryImageDataModule``)
    """

    name = "SVHN"
    num_classes = 10
    in_channels = 3
    image_size = (32, 32)
    mean = (0.4377, 0.4438, 0.4728)
    std = (0.1980, 0.2010, 0.1970)

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        global_batch_size: int | None = None,
        val_size: int | float = 5000,
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
        include_extra: bool = False,
    ) -> None:
        self.include_extra = include_extra
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
        if self.imagenet_transforms:
            return transfer_augmentation(hflip=False)
        return BatchAugment(pad_crop=4)

    def split_names(self, train: bool) -> list[str]:
        if not train:
            return ["test"]
        return ["train", "extra"] if self.include_extra else ["train"]

    def path(self, split: str) -> Path:
        return Path(self.data_dir).expanduser() / f"{split}_32x32.mat"

    def how_to_get_data(self) -> str:
        names = ", ".join(f"{split}_32x32.mat" for split in self.split_names(True) + ["test"])
        return (
            f"Expected the files {names} in {self.data_dir!r} (the layout torchvision's SVHN "
            "downloads). Set data.download: true to download them."
        )

    def prepare_data(self) -> None:
        splits = self.split_names(True) + ["test"]
        missing = [split for split in splits if not self.path(split).is_file()]
        if missing and self.download:
            calls = [{"split": split} for split in missing]
            download_with_torchvision(self.name, self.data_dir, "SVHN", self.how_to_get_data(), calls)

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self.prepare_data()
        parts = []
        for split in self.split_names(train):
            if not self.path(split).is_file():
                raise DataNotFoundError(
                    f"{self.name} data not found: {str(self.path(split))!r} is missing. "
                    f"{self.how_to_get_data()}"
                )
            parts.append(read_svhn_mat(self.path(split)))
        return torch.cat([part[0] for part in parts]), torch.cat([part[1] for part in parts])
