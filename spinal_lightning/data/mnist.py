"""MNIST-style data sets stored as IDX files: looked up locally, in a system folder, or downloaded.

MNIST, Fashion-MNIST, KMNIST, QMNIST and every EMNIST split: 28 x 28 grey images, held in memory.
"""

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

# Classes of each EMNIST split (Cohen et al., "EMNIST: an extension of MNIST to handwritten
# letters", 2017, table II).
EMNIST_CLASSES = {"byclass": 62, "bymerge": 47, "balanced": 47, "letters": 26, "digits": 10, "mnist": 10}


def _find_file(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def mnist_augmentation() -> BatchAugment:
    """Build the SpinalNet augmentation of MNIST, KMNIST, QMNIST and EMNIST.

    It is RandomPerspective (distortion 0.5, probability 0.5) followed by RandomRotation(10).
    """
    return BatchAugment(rotation_degrees=10.0, perspective_distortion=0.5, perspective_probability=0.5)


class MNISTStyleDataModule(InMemoryImageDataModule):
    """Base for the 28 x 28 grey IDX data sets (MNIST, Fashion-MNIST, KMNIST, ...).

    Data is looked up, in this order, in ``data_dir`` itself, in ``data_dir/<torchvision folder>/raw``
    (the layout torchvision downloads to), in ``system_dirs``, and finally downloaded with
    torchvision when ``download`` is true.
    """

    in_channels = 1
    image_size = (28, 28)
    mean = (0.1307,)
    std = (0.3081,)
    torchvision_class: str = ""
    system_dirs: tuple[str, ...] = ()

    def default_augmentation(self) -> BatchAugment:
        return mnist_augmentation()

    def file_stems(self, train: bool) -> tuple[str, str]:
        """Return the names (without ``.gz``) of the images and labels files of one split."""
        return SPLIT_FILES[train]

    def candidate_dirs(self) -> list[Path]:
        data_dir = Path(self.data_dir).expanduser()
        return [data_dir, data_dir / self.torchvision_class / "raw", *map(Path, self.system_dirs)]

    def find_files(self, train: bool) -> tuple[Path, Path] | None:
        for folder in self.candidate_dirs():
            found = [_find_file(folder, stem) for stem in self.file_stems(train)]
            if all(found):
                return found[0], found[1]
        return None

    def prepare_data(self) -> None:
        # Lightning calls this on one process per node before setup, so a download is not raced.
        if self.find_files(train=True) and self.find_files(train=False):
            return
        if self.download:
            self._download()

    def torchvision_arguments(self, train: bool) -> dict:
        """Return the keyword arguments that select one split in the torchvision dataset class."""
        return {"train": train}

    def _download(self) -> None:
        import torchvision

        dataset_class = getattr(torchvision.datasets, self.torchvision_class)
        for train in (True, False):
            try:
                dataset_class(self.data_dir, download=True, **self.torchvision_arguments(train))
            except Exception as error:  # torchvision raises URLError, RuntimeError or OSError offline
                raise DataNotFoundError(
                    f"Downloading {self.name} into {self.data_dir!r} failed: {error}. "
                    f"{self._how_to_get_data(download_failed=True)}"
                ) from error

    def _how_to_get_data(self, download_failed: bool = False) -> str:
        names = ", ".join(f"{stem}.gz" for train in (True, False) for stem in self.file_stems(train))
        folders = ", ".join(repr(str(folder)) for folder in self.candidate_dirs())
        # After a failed download, suggesting download: true again would send the user in a circle.
        download = (
            "or run again where the download source is reachable"
            if download_failed
            else "or set data.download: true to download them with torchvision"
        )
        return (
            f"Expected the files {names} (or the same without .gz) in one of {folders}. Copy them "
            f"into data_dir, {download}{self._system_hint()}."
        )

    def _system_hint(self) -> str:
        return ""

    def convert(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Adapt the arrays read from the files of a data set whose layout differs from MNIST's."""
        return images, labels

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        files = self.find_files(train)
        if files is None:
            self.prepare_data()
            files = self.find_files(train)
        if files is None:
            raise DataNotFoundError(f"{self.name} data not found. {self._how_to_get_data()}")

        images, labels = self.convert(*(read_idx(path) for path in files))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(
                f"{files[0]} contains images of shape {tuple(images.shape)} and {files[1]} labels of "
                f"shape {tuple(labels.shape)}; expected (N, H, W) images and N labels."
            )
        return images.unsqueeze(1).contiguous(), labels.long()


class MNISTDataModule(MNISTStyleDataModule):
    """MNIST: 60,000 training and 10,000 test images of handwritten digits, 28 x 28 grey.

    The default augmentation is the SpinalNet recipe: RandomPerspective (distortion 0.5,
    probability 0.5) and RandomRotation(10), normalised with (0.1307, 0.3081).
    """

    name = "MNIST"
    num_classes = 10
    torchvision_class = "MNIST"


class KMNISTDataModule(MNISTStyleDataModule):
    """Kuzushiji-MNIST: 60,000 training and 10,000 test images of 10 cursive Japanese characters.

    Same files, layout and default augmentation as MNIST.
    """

    name = "KMNIST"
    num_classes = 10
    torchvision_class = "KMNIST"


class QMNISTDataModule(MNISTStyleDataModule):
    """QMNIST: 60,000 training and 60,000 test digits, a reconstruction of MNIST's full NIST test set.

    The label files hold eight int32 columns per image (class, NIST writer id, ...); the first
    column is the class. The test split is torchvision's ``what="test"``, all 60,000 images.
    """

    name = "QMNIST"
    num_classes = 10
    torchvision_class = "QMNIST"

    def file_stems(self, train: bool) -> tuple[str, str]:
        split = "train" if train else "test"
        return f"qmnist-{split}-images-idx3-ubyte", f"qmnist-{split}-labels-idx2-int"

    def torchvision_arguments(self, train: bool) -> dict:
        return {"what": "train" if train else "test"}

    def convert(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if labels.ndim == 2:
            labels = labels[:, 0]
        return images, labels


class EMNISTDataModule(MNISTStyleDataModule):
    """EMNIST: handwritten digits and letters, 28 x 28 grey, in six splits.

    Classes per split: byclass 62, bymerge 47, balanced 47, letters 26, digits 10, mnist 10. The
    ``letters`` files number their classes 1..26; they are shifted to 0..25. The files store every
    image transposed, and ``upright`` transposes them back (a CNN learns either way, but the
    images then look like the letters they are).

    Args:
        split: one of ``byclass``, ``bymerge``, ``balanced``, ``letters``, ``digits``, ``mnist``.
        upright: transpose the stored images so they are upright.
        (the other arguments are those of ``InMemoryImageDataModule``)
    """

    torchvision_class = "EMNIST"

    def __init__(
        self,
        split: str = "balanced",
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
        upright: bool = True,
    ) -> None:
        if split not in EMNIST_CLASSES:
            raise ValueError(f"Unknown EMNIST split {split!r}. Expected one of {list(EMNIST_CLASSES)}.")
        self.split = split
        self.upright = upright
        self.num_classes = EMNIST_CLASSES[split]
        self.name = f"EMNIST {split}"
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

    def file_stems(self, train: bool) -> tuple[str, str]:
        prefix = f"emnist-{self.split}-{'train' if train else 'test'}"
        return f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"

    def torchvision_arguments(self, train: bool) -> dict:
        return {"split": self.split, "train": train}

    def convert(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.upright and images.ndim == 3:
            images = images.transpose(1, 2)
        if self.split == "letters":
            labels = labels.long() - 1
        return images, labels


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
