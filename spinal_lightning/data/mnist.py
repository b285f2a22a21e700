"""MNIST-style data sets stored as IDX files: looked up locally, in a system folder, or downloaded."""

from __future__ import annotations

from pathlib import Path

import torch

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.base import InMemoryImageDataModule
from spinal_lightning.data.idx import read_idx
from spinal_lightning.errors import DataNotFoundError

SPLIT_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


class MNISTStyleDataModule(InMemoryImageDataModule):
    """Base for the 28 x 28 grey IDX data sets (MNIST, Fashion-MNIST, KMNIST, ...).

    Data is looked up, in this order, in ``data_dir`` itself, in ``data_dir/<torchvision folder>/raw``
    (the layout torchvision downloads to), in ``system_dirs``, and finally downloaded with
    torchvision when ``download`` is true.
    """

    in_channels = 1
    image_size = (28, 28)
    torchvision_class: str = ""
    system_dirs: tuple[str, ...] = ()

    def candidate_dirs(self) -> list[Path]:
        data_dir = Path(self.data_dir).expanduser()
        return [data_dir, data_dir / self.torchvision_class / "raw", *map(Path, self.system_dirs)]

    def find_files(self, train: bool) -> tuple[Path, Path] | None:
        for folder in self.candidate_dirs():
            found = [_find_file(folder, stem) for stem in SPLIT_FILES[train]]
            if all(found):
                return found[0], found[1]
        return None

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup, so a download is not raced.
        if self.find_files(train=True) and self.find_files(train=False):
            return
        if self.download:
            self._download()

    def _download(self) -> None:
        import torchvision

        dataset_class = getattr(torchvision.datasets, self.torchvision_class)
        for train in (True, False):
            try:
                dataset_class(self.data_dir, train=train, download=True)
            except Exception as error:  # torchvision raises URLError, RuntimeError or OSError offline
                raise DataNotFoundError(
                    f"Downloading {self.name} into {self.data_dir!r} failed: {error}. "
                    f"{self._how_to_get_data()}"
                ) from error

    def _how_to_get_data(self) -> str:
        names = ", ".join(f"{stem}.gz" for train in (True, False) for stem in SPLIT_FILES[train])
        folders = ", ".join(repr(str(folder)) for folder in self.candidate_dirs())
        return (
            f"Expected the files {names} in one of {folders}. Copy them into data_dir, "
            f"or set data.download: true to download them with torchvision{self._system_hint()}."
        )

    def _system_hint(self) -> str:
        return ""

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        files = self.find_files(train)
        if files is None:
            self.prepare_data()
            files = self.find_files(train)
        if files is None:
            raise DataNotFoundError(f"{self.name} data not found. {self._how_to_get_data()}")

        images, labels = (read_idx(path) for path in files)
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{files[0]} holds images of shape {tuple(images.shape)} and {files[1]} labels of "
                f"shape {tuple(labels.shape)}; expected (N, H, W) images and N labels."
            )
        return images.unsqueeze(1).contiguous(), labels.long()


class FashionMNISTDataModule(MNISTStyleDataModule):
    """Fashion-MNIST: 60,000 training and 10,000 test images of 10 clothing classes, 28 x 28 grey.

    Besides ``data_dir``, the data is found in ``/usr/share/datasets/fashion-mnist/``, where the
    Debian package ``dataset-fashion-mnist`` installs it. The default augmentation is the SpinalNet
    recipe: RandomRotation(10) and RandomResizedCrop(28, scale=(0.95, 1)), normalised with (0.5, 0.5).
    """

    name = "Fashion-MNIST"
    num_classes = 10
    mean = (0.5,)
    std = (0.5,)
    torchvision_class = "FashionMNIST"
    system_dirs = ("/usr/share/datasets/fashion-mnist",)
    classes = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )

    def default_augmentation(self) -> BatchAugment:
        return BatchAugment(rotation_degrees=10.0, crop_scale=(0.95, 1.0))

    def _system_hint(self) -> str:
        return ", or install the Debian package: apt-get install dataset-fashion-mnist"
