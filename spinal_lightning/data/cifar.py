"""CIFAR-10 and CIFAR-100: 50,000 training and 10,000 test colour images, 32 x 32, held in memory.

The files are the "python version" pickles that torchvision downloads: ``cifar-10-batches-py/``
(``data_batch_1`` .. ``data_batch_5``, ``test_batch``) and ``cifar-100-python/`` (``train``,
``test``). They are read directly, so files copied in by hand work without torchvision's checksums.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.base import InMemoryImageDataModule
from spinal_lightning.data.download import download_with_torchvision
from spinal_lightning.errors import CorruptDataError, DataNotFoundError


def transfer_augmentation(hflip: bool = True) -> BatchAugment:
    """Augmentation for fine-tuning a pretrained backbone: rotation(15), random crop and flip."""
    return BatchAugment(rotation_degrees=15.0, crop_scale=(0.8, 1.0), hflip_probability=0.5 if hflip else 0.0)


def read_pickle_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR pickle into (images uint8 (N, 3, 32, 32), labels (N,)).

    NOTE: unpickling can run code, so read only files from a source you trust, as with
    torchvision's own CIFAR classes.
    """
    try:
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="latin1")
        images = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key], dtype=np.int64)
    except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError) as error:
        raise CorruptDataError(
            f"Cannot read the CIFAR batch {str(path)!r}: {error!r}. Delete the folder and get the "
            "data again (data.download: true)."
        ) from error
    if len(images) != len(labels):
        raise CorruptDataError(
            f"{str(path)!r} contains {len(images)} images but {len(labels)} labels; delete it and get "
            "the data again."
        )
    return images, labels


class CIFAR10DataModule(InMemoryImageDataModule):
    """CIFAR-10: 10 classes of 32 x 32 colour images.

    The default augmentation is the SpinalNet recipe for CIFAR: a random crop with 4 pixels of
    padding and a horizontal flip. With ``imagenet_transforms`` it is rotation(15), random crop
    and flip, and batches are resized to 224 pixels on the device.
    """

    name = "CIFAR-10"
    num_classes = 10
    in_channels = 3
    image_size = (32, 32)
    mean = (0.4914, 0.4822, 0.4465)
    std = (0.2470, 0.2435, 0.2616)
    folder = "cifar-10-batches-py"
    torchvision_class = "CIFAR10"
    label_key = "labels"

    def file_names(self, train: bool) -> list[str]:
        return [f"data_batch_{index}" for index in range(1, 6)] if train else ["test_batch"]

    def default_augmentation(self) -> BatchAugment:
        if self.imagenet_transforms:
            return transfer_augmentation()
        return BatchAugment(hflip_probability=0.5, pad_crop=4)

    def data_folder(self) -> Path:
        return Path(self.data_dir).expanduser() / self.folder

    def missing_files(self) -> list[Path]:
        names = self.file_names(True) + self.file_names(False)
        return [self.data_folder() / name for name in names if not (self.data_folder() / name).is_file()]

    def how_to_get_data(self) -> str:
        names = ", ".join(self.file_names(True) + self.file_names(False))
        return (
            f"Expected the files {names} in {str(self.data_folder())!r} (the layout torchvision's "
            f"{self.torchvision_class} downloads). Set data.download: true to download them, or "
            "extract the python version of the archive into data_dir."
        )

    def prepare_data(self) -> None:
        if self.missing_files() and self.download:
            calls = [{"train": True}, {"train": False}]
            download_with_torchvision(
                self.name, self.data_dir, self.torchvision_class, self.how_to_get_data(), calls
            )

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        if self.missing_files():
            self.prepare_data()
        missing = self.missing_files()
        if missing:
            raise DataNotFoundError(
                f"{self.name} data not found: {', '.join(repr(str(path)) for path in missing[:3])} "
                f"{'is' if len(missing) == 1 else 'are'} missing. {self.how_to_get_data()}"
            )
        parts = [
            read_pickle_batch(self.data_folder() / name, self.label_key) for name in self.file_names(train)
        ]
        images = np.concatenate([part[0] for part in parts])
        labels = np.concatenate([part[1] for part in parts])
        return torch.from_numpy(images), torch.from_numpy(labels)


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100: 100 classes (the fine labels) of 32 x 32 colour images; otherwise as CIFAR-10."""

    name = "CIFAR-100"
    num_classes = 100
    mean = (0.5071, 0.4865, 0.4409)
    std = (0.2673, 0.2564, 0.2762)
    folder = "cifar-100-python"
    torchvision_class = "CIFAR100"
    label_key = "fine_labels"

    def file_names(self, train: bool) -> list[str]:
        return ["train"] if train else ["test"]
