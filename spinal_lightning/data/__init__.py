"""Datamodules. They know nothing of the model: each reports ``num_classes``, ``in_channels``
and ``image_size``, which the CLI links into the model."""

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.base import ImageDataModule, InMemoryImageDataModule
from spinal_lightning.data.cifar import CIFAR10DataModule, CIFAR100DataModule
from spinal_lightning.data.digits import DigitsDataModule
from spinal_lightning.data.folder import Caltech101DataModule, ImageFolderDataModule
from spinal_lightning.data.mnist import (
    DataNotFoundError,
    EMNISTDataModule,
    FashionMNISTDataModule,
    KMNISTDataModule,
    MNISTDataModule,
    MNISTStyleDataModule,
    QMNISTDataModule,
)
from spinal_lightning.data.stl10 import STL10DataModule
from spinal_lightning.data.svhn import SVHNDataModule
from spinal_lightning.data.transforms import ImageTransforms

__all__ = [
    "BatchAugment",
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "Caltech101DataModule",
    "DataNotFoundError",
    "DigitsDataModule",
    "EMNISTDataModule",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "ImageFolderDataModule",
    "ImageTransforms",
    "InMemoryImageDataModule",
    "KMNISTDataModule",
    "MNISTDataModule",
    "MNISTStyleDataModule",
    "QMNISTDataModule",
    "STL10DataModule",
    "SVHNDataModule",
]
