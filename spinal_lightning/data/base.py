"""Base datamodules: the common split and loaders, and the in-memory fast path.

``ImageDataModule`` contains what every data set shares: the folder, the per-device batch size, the
seeded train/validation split and the loaders. ``InMemoryImageDataModule`` adds the fast path for
data sets that fit in memory: images are decoded once into a (N, C, H, W) uint8 tensor, batches
travel to the device as uint8 (a quarter of the bytes of float32) and are converted, augmented and
normalised there in ``on_after_batch_transfer``, so no per-image Python transform runs in the
training loop.
"""

from __future__ import annotations

import os

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset

from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.device import DeviceTensorDataset, IndexBatch
from spinal_lightning.data.distributed import evaluation_sampler, per_device_batch_size
from spinal_lightning.data.pil import PILImageDataset, build_pil_transform

PIPELINES = ("tensor", "pil")

# ImageNet channel statistics, which torchvision's pretrained weights expect. Grey images use the
# mean of the three channels.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def imagenet_statistics(channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Return ImageNet (mean, std) for 3 channels, or their channel average repeated otherwise."""
    if channels == 3:
        return IMAGENET_MEAN, IMAGENET_STD
    return (sum(IMAGENET_MEAN) / 3,) * channels, (sum(IMAGENET_STD) / 3,) * channels


def resolve_size(size: int | float, total: int, name: str) -> int:
    """Turn ``size`` (a count, or a fraction in (0, 1) of ``total``) into a sample count."""
    if isinstance(size, bool) or size < 0:
        raise ValueError(f"{name} must be a count >= 0 or a fraction in (0, 1), got {size!r}.")
    if isinstance(size, float) and size < 1:
        return round(size * total)
    if isinstance(size, float) and not size.is_integer():
        raise ValueError(f"{name} must be a whole count or a fraction in (0, 1), got {size!r}.")
    return int(size)


def seed_everything_value() -> int | None:
    """Return the seed of the run's ``seed_everything``, or ``None`` when it was not called."""
    # seed_everything stores its seed here, and DDP launchers pass it on to every process.
    global_seed = os.environ.get("PL_GLOBAL_SEED")
    return int(global_seed) if global_seed is not None else None


class ImageDataModule(L.LightningDataModule):
    """Folder, per-device batch size, seeded validation split and loaders shared by every data set.

    Subclasses set ``name``, ``num_classes``, ``in_channels`` and ``image_size`` (as class
    attributes or in ``__init__``) and fill ``train_set``, ``val_set`` and ``test_set`` in ``setup``.

    Args:
        data_dir: folder where the data set is looked up (and downloaded to, if allowed).
        batch_size: samples per batch on each device (per process under DDP).
        global_batch_size: samples per optimizer step summed over all processes. When set, it
            replaces ``batch_size`` with ``global_batch_size / world size``, and a value that does
            not divide by the world size raises a ``ValueError``.
        val_size: samples carved out of the training set for validation, as a count or a fraction
            in (0, 1). The split is drawn with ``split_seed``, so it is the same on every run and
            every process. The test set is never used to choose anything.
        split_seed: seed of the train/validation split. ``None`` follows the run's
            ``seed_everything`` value, so one seed drives split, weights, augmentation and data
            order; an integer pins the split across seeds. Without either, ``DEFAULT_SPLIT_SEED``.
        num_workers: DataLoader worker processes.
        download: download the data when it is not found locally.
        seed: seed of the training batch order (and, for in-memory data, the augmentation draws).
            These use their own generators, so two models trained with the same seed see the same
            batches in the same order, however differently their layers draw from torch's global
            generator (dropout, weight init). ``None`` takes the ``seed_everything`` value
            (Lightning stores it in ``PL_GLOBAL_SEED``) or, without one, a random seed.
    """

    name: str = "dataset"
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]

    # Used when neither split_seed nor seed_everything is set; a fixed value keeps the split
    # identical in every DDP process.
    DEFAULT_SPLIT_SEED = 42

    def __init__(
        self,
        data_dir: str = "data",
        batch_size: int = 100,
        global_batch_size: int | None = None,
        val_size: int | float = 5000,
        split_seed: int | None = None,
        num_workers: int = 0,
        download: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        if global_batch_size is not None and global_batch_size < 1:
            raise ValueError(f"global_batch_size must be a positive integer, got {global_batch_size!r}.")
        resolve_size(val_size, 1, "val_size")
        if num_workers < 0:
            raise ValueError(f"num_workers must be >= 0, got {num_workers!r}.")
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.global_batch_size = global_batch_size
        self.val_size = val_size
        self.split_seed = split_seed
        self.num_workers = num_workers
        self.download = download
        self.seed = seed

        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    def split_indices(self, total: int, size: int | float, name: str = "val_size", offset: int = 0):
        """Return (kept, carved) index tensors: ``size`` of ``total`` samples carved by the split seed.

        ``offset`` shifts the seed, so a second split of the same data (a test set carved after the
        validation set) draws a different order.
        """
        count = resolve_size(size, total, name)
        if not 0 < count < total:
            raise ValueError(
                f"{name}={size!r} gives {count} samples, but it must be between 1 and the {total - 1} "
                f"of the {total} training samples of {self.name} that leave at least one for training."
            )
        generator = torch.Generator().manual_seed(self.resolved_split_seed() + offset)
        order = torch.randperm(total, generator=generator)
        return order[count:], order[:count]

    def resolved_split_seed(self) -> int:
        """Return ``split_seed``, else the ``seed_everything`` value, else ``DEFAULT_SPLIT_SEED``."""
        if self.split_seed is not None:
            return self.split_seed
        global_seed = seed_everything_value()
        return global_seed if global_seed is not None else self.DEFAULT_SPLIT_SEED

    def resolve_seed(self) -> int:
        """Return ``seed``, else the ``seed_everything`` value, else a seed drawn at random."""
        if self.seed is not None:
            return self.seed
        global_seed = seed_everything_value()
        if global_seed is not None:
            return global_seed
        return int(torch.empty((), dtype=torch.int64).random_().item())

    def device_batch_size(self) -> int:
        """Return the batch size of one process: ``batch_size``, or the global batch split evenly."""
        if self.global_batch_size is None:
            return self.batch_size
        world_size = self.trainer.world_size if self.trainer is not None else 1
        return per_device_batch_size(self.global_batch_size, world_size)

    def check_labels(self, labels: torch.Tensor) -> None:
        """Raise when a label lies outside ``[0, num_classes)``, naming the data folder."""
        if labels.numel() and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError(
                f"{self.name} labels range from {int(labels.min())} to {int(labels.max())}, but the "
                f"data set declares num_classes={self.num_classes}. Check the files in {self.data_dir!r}."
            )

    def _loader(self, dataset: Dataset | None, shuffle: bool) -> DataLoader:
        if dataset is None:
            raise RuntimeError(
                f"{type(self).__name__}.setup() must run before its dataloaders are requested."
            )
        # Under DDP, evaluation loaders shard without padding, so each sample is counted once.
        sampler = None if shuffle else evaluation_sampler(dataset, self.trainer)

        # The sampler advances this generator once per epoch, so every epoch gets a new order
        # that depends on the seed only. Under DDP, Lightning replaces the sampler with a
        # DistributedSampler seeded from PL_GLOBAL_SEED, so the order still follows the seed.
        # NOTE: a fit resumed from a checkpoint restarts this generator at the seed, so its first
        # epoch repeats the order of epoch 0.
        generator = torch.Generator().manual_seed(self.resolve_seed()) if shuffle else None
        return DataLoader(
            dataset,
            batch_size=self.device_batch_size(),
            shuffle=shuffle,
            sampler=sampler,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=generator,
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


class InMemoryImageDataModule(ImageDataModule):
    """Split, loaders and on-device augmentation for in-memory image classification data.

    Subclasses set ``num_classes``, ``in_channels``, ``image_size``, ``mean``, ``std`` and
    implement ``load_images(train)`` returning ``(images uint8 (N, C, H, W), labels int64 (N,))``.

    Args:
        data_dir: folder where the data set is looked up (and downloaded to, if allowed).
        batch_size: samples per batch on each device (per process under DDP).
        global_batch_size: samples per optimizer step over all processes; see ``ImageDataModule``.
        val_size: samples carved out of the training set for validation, as a count or a fraction
            in (0, 1). The split is drawn with ``split_seed``, so it is the same on every run and
            every process. The test set is never used to choose anything.
        split_seed: seed of the train/validation split; ``None`` follows ``seed_everything``.
        num_workers: DataLoader worker processes. Indexing an in-memory tensor is cheap, so 0 is
            usually fastest.
        augment: apply ``augmentation`` to training batches.
        augmentation: the training augmentation; ``None`` uses the data set's default.
        download: download the data when it is not found locally.
        imagenet_transforms: prepare images for an ImageNet-pretrained backbone: resize them on the
            device to ``image_size`` (224 unless set) and normalise with the ImageNet mean and std
            instead of the data set's own.
        image_size: side in pixels that batches are resized to on the device; ``None`` keeps the
            stored size (or 224 with ``imagenet_transforms``).
        seed: seed of the batch order and the augmentation draws; see ``ImageDataModule``.
        pipeline: ``"tensor"`` augments whole uint8 batches on the device with ``BatchAugment``;
            ``"pil"`` runs the equivalent per-sample torchvision transforms on PIL images in the
            DataLoader, the usual PyTorch pipeline, which is slower.
        data_on_device: with the tensor pipeline, move the whole uint8 data set to the training
            device once in ``setup`` and serve batches of indices, so no pixels cross the bus
            during training. On a CPU this only saves the per-sample collation.
    """

    mean: tuple[float, ...]
    std: tuple[float, ...]

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
        imagenet_transforms: bool = False,
        image_size: int | None = None,
        seed: int | None = None,
        pipeline: str = "tensor",
        data_on_device: bool = False,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            batch_size=batch_size,
            global_batch_size=global_batch_size,
            val_size=val_size,
            split_seed=split_seed,
            num_workers=num_workers,
            download=download,
            seed=seed,
        )
        if pipeline not in PIPELINES:
            raise ValueError(f"pipeline must be one of {PIPELINES}, got {pipeline!r}.")
        if data_on_device and pipeline != "tensor":
            raise ValueError(
                "data_on_device: true needs pipeline: tensor, because the PIL pipeline transforms "
                "each image on the CPU. Set one of the two to its default."
            )
        self.pipeline = pipeline
        self.data_on_device = data_on_device
        if image_size is not None and image_size < 1:
            raise ValueError(f"image_size must be a positive number of pixels or null, got {image_size!r}.")
        self.imagenet_transforms = imagenet_transforms
        if image_size is None and imagenet_transforms:
            image_size = 224
        self.resize_to = image_size
        if image_size is not None:
            # An instance attribute, so the reported size is the one the model receives.
            self.image_size = (image_size, image_size)
        if imagenet_transforms:
            self.mean, self.std = imagenet_statistics(self.in_channels)
        self.augmentation = (augmentation or self.default_augmentation()) if augment else None
        self._augment_generator: torch.Generator | None = None

    def default_augmentation(self) -> BatchAugment | None:
        """Return the training augmentation used when none is configured."""
        return None

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if stage in ("fit", "validate", None) and self.train_set is None:
            images, labels = self.load_images(train=True)
            self.check_labels(labels)
            train_index, val_index = self.split_indices(len(labels), self.val_size)
            self.train_set = self.make_dataset(images[train_index], labels[train_index], "train")
            self.val_set = self.make_dataset(images[val_index], labels[val_index], "val")

        if stage in ("test", "predict", None) and self.test_set is None:
            images, labels = self.load_images(train=False)
            self.check_labels(labels)
            self.test_set = self.make_dataset(images, labels, "test")

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """Normalise float images in [0, 1] with the data set's mean and std."""
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std

    def resize(self, images: torch.Tensor) -> torch.Tensor:
        """Resize float images to ``image_size`` with bilinear interpolation (antialiased when shrinking)."""
        if self.resize_to is None or tuple(images.shape[-2:]) == self.image_size:
            return images
        shrinking = images.shape[-1] > self.resize_to or images.shape[-2] > self.resize_to
        return F.interpolate(
            images, size=self.image_size, mode="bilinear", align_corners=False, antialias=shrinking
        )

    def make_dataset(self, images: torch.Tensor, labels: torch.Tensor, split: str) -> Dataset:
        """Wrap the uint8 images and labels of one split (train, val or test) for the chosen pipeline."""
        if self.pipeline == "pil":
            augmentation = self.augmentation if split == "train" else None
            transform = build_pil_transform(augmentation, self.image_size, self.mean, self.std)
            return PILImageDataset(images, labels, transform)
        if self.data_on_device:
            # Lightning calls setup after the strategy has chosen this process's device.
            device = self.trainer.strategy.root_device if self.trainer is not None else torch.device("cpu")
            return DeviceTensorDataset(images, labels, split, device)
        return TensorDataset(images, labels)

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
            images = self.augmentation(images, generator=self.augment_generator(images.device))
        return self.normalize(self.resize(images)), labels

    def augment_generator(self, device: torch.device) -> torch.Generator:
        """Return the generator of the augmentation draws on ``device``, created on first use.

        Each process adds its global rank to the seed, so DDP processes draw different transforms.
        """
        if self._augment_generator is None or self._augment_generator.device != device:
            rank = self.trainer.global_rank if self.trainer is not None else 0
            self._augment_generator = torch.Generator(device=device).manual_seed(self.resolve_seed() + rank)
        return self._augment_generator
