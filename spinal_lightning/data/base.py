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


class InMemoryImageDataModule(L.LightningDataModule):
    """Split, loaders and on-device augmentation for in-memory image classification data.

    Subclasses set ``num_classes``, ``in_channels``, ``image_size``, ``mean``, ``std`` and
    implement ``load_images(train)`` returning ``(images uint8 (N, C, H, W), labels int64 (N,))``.

    Args:
        data_dir: folder where the data set is looked up (and downloaded to, if allowed).
        batch_size: samples per batch on each device.
        val_size: samples carved out of the training set for validation. The split is drawn
            with ``split_seed``, so it is the same on every run and every process; the test set is
            never used to choose anything.
        split_seed: seed of the train/validation split.
        num_workers: DataLoader worker processes. Indexing an in-memory tensor is cheap, so 0 is
            usually fastest.
        augment: apply ``augmentation`` to training batches.
        augmentation: the training augmentation; ``None`` uses the data set's default.
        download: download the data when it is not found locally.
        seed: seed of the training batch order and of the augmentation draws. These use their own
            generators, so two models trained with the same seed see the same batches in the same
            order with the same augmentation, however differently their layers draw from torch's
            global generator (dropout, weight init). ``None`` takes the ``seed_everything`` value
            (Lightning stores it in ``PL_GLOBAL_SEED``) or, without one, a random seed.
    """

    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    name: str = "dataset"

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        val_size: int = 5000,
        split_seed: int = 42,
        num_workers: int = 0,
        augment: bool = True,
        augmentation: BatchAugment | None = None,
        download: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size!r}.")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}.")
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.download = download
        self.augmentation = (augmentation or self.default_augmentation()) if augment else None
        self.seed = seed
        self._augment_generator: torch.Generator | None = None

        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def default_augmentation(self) -> BatchAugment | None:
        """Return the training augmentation used when none is configured."""
        return None

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self.load_images(train=True)
            self._check_labels(labels)
            if not 0 < self.val_size < len(labels):
                raise ValueError(
                    f"val_size={self.val_size} must be between 1 and the {len(labels)} training "
                    f"samples of {self.name}."
                )
            order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(self.split_seed))
            val_index, train_index = order[: self.val_size], order[self.val_size :]
            self.train_set = TensorDataset(images[train_index], labels[train_index])
            self.val_set = TensorDataset(images[val_index], labels[val_index])

        if stage in ("test", None) and self.test_set is None:
            images, labels = self.load_images(train=False)
            self._check_labels(labels)
            self.test_set = TensorDataset(images, labels)

    def _check_labels(self, labels: torch.Tensor) -> None:
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{self.name} labels range from {int(labels.min())} to {int(labels.max())}, but the "
                f"data set declares num_classes={self.num_classes}. Check the files in {self.data_dir!r}."
            )

    def resolve_seed(self) -> int:
        """Return ``seed``, else the ``seed_everything`` value, else a seed drawn at random."""
        if self.seed is not None:
            return self.seed
        global_seed = os.environ.get("PL_GLOBAL_SEED")
        if global_seed is not None:
            return int(global_seed)
        return int(torch.empty((), dtype=torch.int64).random_().item())

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its dataloaders are requested.")

        # The sampler advances this generator once per epoch, so every epoch gets a new order
        # that depends on the seed only. Under DDP, Lightning replaces the sampler with a
        # DistributedSampler seeded from PL_GLOBAL_SEED, so the order still follows the seed.
        # NOTE: a fit resumed from a checkpoint restarts this generator at the seed, so its first
        # epoch repeats the order of epoch 0.
        generator = torch.Generator().manual_seed(self.resolve_seed()) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=generator,
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
            images = self.augmentation(images, generator=self.augment_generator(images.device))
        return self.normalize(images), labels

    def augment_generator(self, device: torch.device) -> torch.Generator:
        """Return the generator of the augmentation draws on ``device``, created on first use.

        Each process adds its global rank to the seed, so DDP processes draw different transforms.
        """
        if self._augment_generator is None or self._augment_generator.device != device:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self._augment_generator = torch.Generator(device=device).manual_seed(self.resolve_seed() + rank)
        return self._augment_generator
