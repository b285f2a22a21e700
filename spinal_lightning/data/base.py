"""Base datamodule for data sets that fit in memory as one uint8 tensor.

Images are decoded once into a (N, C, H, W) uint8 tensor. Batches travel to the device as uint8
(a quarter of the bytes of float32) and are converted, augmented and normalised there in
``on_after_batch_transfer``, so no per-image Python transform runs in the training loop.
"""

from __future__ import annotations

import os

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.distributed import evaluation_sampler, per_device_batch_size


class InMemoryImageDataModule(L.LightningDataModule):
    """Split, loaders and on-device augmentation for in-memory image classification data.

    Subclasses set ``num_classes``, ``in_channels``, ``image_size``, ``mean``, ``std`` and
    implement ``load_images(train)`` returning ``(images uint8 (N, C, H, W), labels int64 (N,))``.

    Args:
        data_dir: folder where the data set is looked up (and downloaded to, if allowed).
        batch_size: samples per batch on each device (per process under DDP).
        global_batch_size: samples per optimizer step summed over all processes. When set, it
            replaces ``batch_size`` with ``global_batch_size / world size`` in ``setup``, and a
            value that does not divide by the world size raises a ``ValueError``.
        val_size: samples carved out of the training set for validation. The split is drawn
            with ``split_seed``, so it is the same on every run and every process; the test set is
            never used to choose anything.
        split_seed: seed of the train/validation split. ``None`` follows the run's
            ``seed_everything`` value, so one seed drives split, weights, augmentation and data
            order; an integer pins the split across seeds. Without either, ``DEFAULT_SPLIT_SEED``.
        num_workers: DataLoader worker processes. Indexing an in-memory tensor is cheap, so 0 is
            usually fastest.
        augment: apply ``augmentation`` to training batches.
        augmentation: the training augmentation; ``None`` uses the data set's default.
        download: download the data when it is not found locally.
    """

    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = "dataset"

    # Used when neither split_seed nor seed_everything is set; a fixed value keeps the split
    # identical in every DDP process.
    DEFAULT_SPLIT_SEED = 42

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        global_batch_size: int | None = None,
        val_size: int = 5000,
        split_seed: int | None = None,
        num_workers: int = 0,
        augment: bool = True,
        augmentation: BatchAugment | None = None,
        download: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if global_batch_size is not None and global_batch_size < 1:
            raise ValueError(f"global_batch_size must be a positive integer, got {global_batch_size!r}.")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size!r}.")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}.")
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.global_batch_size = global_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.download = download
        self.augmentation = (augmentation or self.default_augmentation()) if augment else None

        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def default_augmentation(self) -> BatchAugment | None:
        """Return the training augmentation used when none is configured."""
        return None

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if self.global_batch_size is not None:
            world_size = self.trainer.world_size if self.trainer is not None else 1
            self.batch_size = per_device_batch_size(self.global_batch_size, world_size)

        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self.load_images(train=True)
            self._check_labels(labels)
            if not 0 < self.val_size < len(labels):
                raise ValueError(
                    f"val_size={self.val_size} must be between 1 and the {len(labels)} training "
                    f"samples of {self.name}."
                )
            generator = torch.Generator().manual_seed(self.resolved_split_seed())
            order = torch.randperm(len(labels), generator=generator)
            val_index, train_index = order[: self.val_size], order[self.val_size :]
            self.train_set = TensorDataset(images[train_index], labels[train_index])
            self.val_set = TensorDataset(images[val_index], labels[val_index])

        if stage in ("test", None) and self.test_set is None:
            images, labels = self.load_images(train=False)
            self._check_labels(labels)
            self.test_set = TensorDataset(images, labels)

    def resolved_split_seed(self) -> int:
        """Return ``split_seed``, else the ``seed_everything`` value, else ``DEFAULT_SPLIT_SEED``."""
        if self.split_seed is not None:
            return self.split_seed
        # seed_everything stores its seed here, and DDP launchers pass it on to every process.
        global_seed = os.environ.get("PL_GLOBAL_SEED")
        return int(global_seed) if global_seed is not None else self.DEFAULT_SPLIT_SEED

    def _check_labels(self, labels: torch.Tensor) -> None:
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{self.name} labels range from {int(labels.min())} to {int(labels.max())}, but the "
                f"data set declares num_classes={self.num_classes}. Check the files in {self.data_dir!r}."
            )

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its dataloaders are requested.")
        # Under DDP, evaluation loaders shard without padding, so each sample is counted once.
        sampler = None if shuffle else evaluation_sampler(dataset, self.trainer)
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self.test_dataloader()

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise float images in [0, 1] with the data set's mean and std."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        images, labels = batch
        if images.dtype != torch.uint8:
            return batch

        # Augment before normalising, so pixels shifted in from outside the image are black (0),
        # the fill value of torchvision's transforms.
        images = images.float().div_(255)
        trainer = self.trainer
        if self.augmentation is not None and trainer is not None and trainer.training:
            images = self.augmentation(images)
        return self.normalize(images), labels
