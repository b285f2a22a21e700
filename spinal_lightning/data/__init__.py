"""Datamodules. They know nothing of the model: each reports ``num_classes``, ``in_channels``
and ``image_size``, which the CLI links into the model."""

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.base import InMemoryImageDataModule
from spinal_lightning.data.mnist import DataNotFoundError, FashionMNISTDataModule, MNISTStyleDataModule

__all__ = [
    "BatchAugment",
    "DataNotFoundError",
    "FashionMNISTDataModule",
    "InMemoryImageDataModule",
    "MNISTStyleDataModule",
]
