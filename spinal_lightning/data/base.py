"""Base datamodule for data sets that fit in memory as one uint8 tensor.

Images are decoded once into a (N, C, H, W) uint8 tensor. Batches travel to the device as uint8
(a quarter of the bytes of float32) and are converted, augmented and normalised there in
``on_after_batch_transfer``, so no per-image Python transform runs in the training loop.
"""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.device import DeviceTensorDataset, IndexBatch
from spinal_lightning.data.pil import PILImageDataset, build_pil_transform

PIPELINES = ("tensor", "pil")


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
        pipeline: ``"tensor"`` augments whole uint8 batches on the device with ``BatchAugment``;
            ``"pil"`` runs the equivalent per-sample torchvision transforms on PIL images in the
            DataLoader, the usual PyTorch pipeline, which is slower.
        data_on_device: with the tensor pipeline, move the whole uint8 data set to the training
            device once in ``setup`` and serve batches of indices, so no pixels cross the bus
            during training. On a CPU this only saves the per-sample collation.
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
        pipeline: str = "tensor",
        data_on_device: bool = False,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size!r}.")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}.")
        if pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}.")
        if data_on_device and pipeline != "tensor":
            raise ValueError(
                "data_on_device: true needs pipeline: tensor, because the PIL pipeline transforms "
                "each image on the CPU. Set one of the two to its default."
            )
        self.data_dir = data_dir
        self.pipeline = pipeline
        self.data_on_device = data_on_device
        self.batch_size = batch_size
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
            self.train_set = self.make_dataset(images[train_index], labels[train_index], "train")
            self.val_set = self.make_dataset(images[val_index], labels[val_index], "val")

        if stage in ("test", None) and self.test_set is None:
            images, labels = self.load_images(train=False)
            self._check_labels(labels)
            self.test_set = self.make_dataset(images, labels, "test")

    def make_dataset(self, images: torch.Tensor, labels: torch.Tensor, split: str) -> Dataset:
        """Wrap the uint8 images and labels of one split (train, val or test) for the chosen pipeline."""
        if self.pipeline == "pil":
            augmentation = self.augmentation if split == "train" else None
            return PILImageDataset(images, labels, build_pil_transform(augmentation, self.image_size, self.mean, self.std))
        if self.data_on_device:
            # Lightning calls setup after the strategy has chosen this process's device.
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            return DeviceTensorDataset(images, labels, split, device)
        return TensorDataset(images, labels)

    def _check_labels(self, labels: torch.Tensor) -> None:
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{self.name} labels range from {int(labels.min())} to {int(labels.max())}, but the "
                f"data set declares num_classes={self.num_classes}. Check the files in {self.data_dir!r}."
            )

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its dataloaders are requested.")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=getattr(dataset, "collate", None),
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
        if isinstance(batch, IndexBatch):
            split_sets = {"train": self.train_set, "val": self.val_set, "test": self.test_set}
            batch = split_sets[batch.split].gather(batch.indices)
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
