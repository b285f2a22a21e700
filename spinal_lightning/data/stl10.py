"""STL-10: 5,000 labelled training and 8,000 test colour images of 10 classes, 96 x 96, in memory.

The files are the binary version torchvision downloads into ``data_dir/stl10_binary/``:
``train_X.bin``, ``train_y.bin``, ``test_X.bin`` and ``test_y.bin``. The 100,000 unlabelled
images are not used.
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

SIDE = 96


def read_stl10_split(images_path: Path, labels_path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read one STL-10 split into (images uint8 (N, 3, 96, 96), labels 0..9).

    The images are stored column-major per channel, hence the transpose, and labels run 1..10.
    """
    images = np.fromfile(images_path, dtype=np.uint8)
    labels = np.fromfile(labels_path, dtype=np.uint8).astype(np.int64) - 1
    if images.size != len(labels) * 3 * SIDE * SIDE:
        raise CorruptDataError(
            f"{str(images_path)!r} contains {images.size} bytes but {str(labels_path)!r} has {len(labels)} "
            f"labels, which need {len(labels) * 3 * SIDE * SIDE} bytes. Delete the folder and get the "
            "data again (data.download: true)."
        )
    images = images.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2)
    return torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels)


class STL10DataModule(InMemoryImageDataModule):
    """STL-10: 10 classes of 96 x 96 colour images, with only 500 labelled training images per class.

    The default augmentation is a random crop with 12 pixels of padding and a horizontal flip. With
    ``imagenet_transforms`` it is rotation(15), random crop and flip, resized to 224 on the device.
    """

    name = "STL-10"
    num_classes = 10
    in_channels = 3
    image_size = (SIDE, SIDE)
    mean = (0.4467, 0.4398, 0.4066)
    std = (0.2603, 0.2566, 0.2713)

    def default_augmentation(self) -> BatchAugment:
        if self.imagenet_transforms:
            return transfer_augmentation()
        return BatchAugment(hflip_probability=0.5, pad_crop=12)

    def paths(self, train: bool) -> tuple[Path, Path]:
        folder = Path(self.data_dir).expanduser() / "stl10_binary"
        split = "train" if train else "test"
        return folder / f"{split}_X.bin", folder / f"{split}_y.bin"

    def how_to_get_data(self) -> str:
        folder = Path(self.data_dir).expanduser() / "stl10_binary"
        return (
            f"Expected the files train_X.bin, train_y.bin, test_X.bin, test_y.bin in {str(folder)!r} "
            "(the layout torchvision's STL10 downloads). Set data.download: true to download them."
        )

    def missing(self) -> list[Path]:
        return [path for train in (True, False) for path in self.paths(train) if not path.is_file()]

    def prepare_data(self) -> None:
        if self.missing() and self.download:
            calls = [{"split": "train"}, {"split": "test"}]
            download_with_torchvision(self.name, self.data_dir, "STL10", self.how_to_get_data(), calls)

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        self.prepare_data()
        missing = self.missing()
        if missing:
            raise DataNotFoundError(
                f"{self.name} data not found: {str(missing[0])!r} is missing. {self.how_to_get_data()}"
            )
        return read_stl10_split(*self.paths(train))
