"""Rich progress bar that also shows the training throughput in images per second."""

from __future__ import annotations

import time
from collections import deque

import lightning as L
import torch
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar

THROUGHPUT_KEY = "img/s"


def batch_size_of(batch) -> int:
    """Return the number of samples in ``batch``: the length of its first tensor."""
    if isinstance(batch, torch.Tensor):
        return len(batch)
    if isinstance(batch, (list, tuple)) and batch:
        return batch_size_of(batch[0])
    if isinstance(batch, dict) and batch:
        return batch_size_of(next(iter(batch.values())))
    return 0


class ThroughputProgressBar(RichProgressBar):
    """``RichProgressBar`` with ``img/s``: training images per second over the last ``window`` batches.

    The rate is measured between the ends of consecutive training batches, so it includes data
    loading and the optimizer step, and counts the images of this process only (under DDP,
    multiply by the number of processes for the total).

    Args:
        window: number of recent batches the rate is averaged over.
        **kwargs: arguments of ``RichProgressBar`` (``refresh_rate``, ``leave``, ``theme``, ...).
    """

    def __init__(self, window: int = 20, **kwargs) -> None:
        super().__init__(**kwargs)
        if window < 1:
            raise ValueError(f"window must be a positive number of batches, got {window!r}.")
        self.window = window
        self._batch_ends: deque[tuple[float, int]] = deque(maxlen=window + 1)

    def images_per_second(self) -> float | None:
        """Return the recent training throughput, or ``None`` before two batches have ended."""
        if len(self._batch_ends) < 2:
            return None
        elapsed = self._batch_ends[-1][0] - self._batch_ends[0][0]
        # The first entry only marks the start time; its images were counted before it.
        images = sum(count for _, count in list(self._batch_ends)[1:])
        return images / elapsed if elapsed > 0 else None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A validation pass sits between epochs, so the window restarts instead of counting it.
        self._batch_ends.clear()
        self._batch_ends.append((time.perf_counter(), 0))
        super().on_train_epoch_start(trainer, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._batch_ends.append((time.perf_counter(), batch_size_of(batch)))
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule):
        items = super().get_metrics(trainer, pl_module)
        rate = self.images_per_second()
        if rate is not None and trainer.training:
            items[THROUGHPUT_KEY] = f"{rate:,.0f}"
        return items


def add_default_progress_bar(trainer_config: dict) -> None:
    """Append a ``ThroughputProgressBar`` to the instantiated trainer callbacks, unless turned off.

    Nothing is added when ``enable_progress_bar`` is false (Lightning rejects a progress-bar
    callback then) or when the config already lists a progress bar.
    """
    if trainer_config.get("enable_progress_bar") is False:
        return
    callbacks = trainer_config.get("callbacks")
    if callbacks is None:
        callbacks = []
    elif not isinstance(callbacks, list):
        callbacks = [callbacks]
    if not any(isinstance(callback, ProgressBar) for callback in callbacks):
        callbacks.append(ThroughputProgressBar())
    trainer_config["callbacks"] = callbacks
