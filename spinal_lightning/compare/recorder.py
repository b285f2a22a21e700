"""A callback that records what a head comparison needs from one training run."""

from __future__ import annotations

import time

import lightning as L
import torch


class ComparisonRecorder(L.Callback):
    """Record the training time, the training images seen and the first training batches.

    ``train_seconds`` is the wall time of ``fit`` minus the time spent in validation (the sanity
    check included), so it covers the training steps, data loading, augmentation and
    checkpointing. The labels and pixel sums of the first ``num_recorded_batches`` training
    batches, taken after augmentation, show whether two runs saw the same batches in the same
    order with the same augmentation.

    Args:
        num_recorded_batches: training batches of the first epoch whose labels are recorded.
    """

    def __init__(self, num_recorded_batches: int = 3) -> None:
        self.num_recorded_batches = num_recorded_batches
        self.fit_seconds = 0.0
        self.validation_seconds = 0.0
        self.train_samples = 0
        self.first_batch_labels: list[list[int]] = []
        self.first_batch_pixel_sums: list[float] = []
        self._fit_start = 0.0
        self._validation_start = 0.0

    @property
    def train_seconds(self) -> float:
        return self.fit_seconds - self.validation_seconds

    @property
    def images_per_second(self) -> float:
        return self.train_samples / self.train_seconds if self.train_seconds > 0 else float("nan")

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._fit_start = time.perf_counter()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_seconds = time.perf_counter() - self._fit_start

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._validation_start = time.perf_counter()

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.validation_seconds += time.perf_counter() - self._validation_start

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        images, labels = batch[0], batch[1]
        # NOTE: under DDP this counts the batches of this process only, and comparisons run on one device.
        self.train_samples += len(labels)

        if trainer.current_epoch == 0 and len(self.first_batch_labels) < self.num_recorded_batches:
            self.first_batch_labels.append(labels.tolist())
            self.first_batch_pixel_sums.append(float(images.detach().to(torch.float64).sum()))
