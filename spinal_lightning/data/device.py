"""In-memory data kept on the training device, served as batches of indices.

With the whole uint8 tensor already on the accelerator, a batch only needs its indices moved
there. The images are then gathered on the device with one indexing operation, in place of a
per-sample ``__getitem__``, a collate and a host-to-device copy of the pixels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.utils.data import Dataset


class IndexBatch(NamedTuple):
    """A batch that names its samples instead of carrying them: sample indices and the split name.

    Lightning moves the ``indices`` tensor to the device like any other batch; the datamodule turns
    it into images and labels in ``on_after_batch_transfer``.
    """

    indices: torch.Tensor
    split: str


class DeviceTensorDataset(Dataset):
    """uint8 images (N, C, H, W) and int64 labels (N,) stored on one device.

    ``__getitem__`` returns the sample index, and ``collate`` packs the indices of a batch into an
    ``IndexBatch``, so a ``DataLoader`` (with its samplers, including Lightning's distributed one)
    works unchanged. ``gather`` returns the images and labels of an ``IndexBatch``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, split: str, device: torch.device | str) -> None:
        if len(images) != len(labels):
            raise ValueError(f"Got {len(images)} images but {len(labels)} labels for the {split!r} split.")
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.split = split

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> int:
        return index

    def collate(self, indices: list[int]) -> IndexBatch:
        return IndexBatch(torch.tensor(indices, dtype=torch.long), self.split)

    def gather(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        indices = indices.to(self.images.device)
        return self.images[indices], self.labels[indices]
