"""A callback that times training batches the same way the plain PyTorch loop does, and writes JSON.

The timed window starts when batch ``warmup`` starts and ends after the last training batch,
optimizer step included; validation is outside it. CUDA is synchronised at both ends.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import torch


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work, so a clock read covers it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class ThroughputTimer(L.Callback):
    """Write training images/s, train-epoch seconds and the final metrics to ``output`` as JSON.

    Args:
        output: path of the JSON file, rewritten at the end of every training epoch and test run.
        warmup: batches at the start of the first epoch left out of the images/s figure (the
            first steps allocate memory and pick kernels).
    """

    def __init__(self, output: str, warmup: int = 5) -> None:
        self.output = Path(output)
        self.warmup = warmup
        self.record: dict[str, float] = {}
        self.timed_start: float | None = None
        self.timed_images = 0
        self.timed_batches = 0
        self.last_batch_end = 0.0
        self.epoch_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        synchronize(pl_module.device)
        self.epoch_start = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        if self.timed_start is None and trainer.global_step >= self.warmup:
            synchronize(pl_module.device)
            self.timed_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if self.timed_start is not None:
            self.timed_images += len(batch[1])
            self.timed_batches += 1
        synchronize(pl_module.device)
        self.last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.timed_start is not None and self.timed_batches:
            seconds = self.last_batch_end - self.timed_start
            self.record.update(
                images_per_second=self.timed_images / seconds,
                timed_batches=self.timed_batches,
                timed_seconds=seconds,
            )
        self.record["train_epoch_seconds"] = self.last_batch_end - self.epoch_start
        self.record["precision"] = str(trainer.precision)
        self._write(trainer)

    def on_test_end(self, trainer, pl_module) -> None:
        self._write(trainer)

    def _write(self, trainer) -> None:
        for key, value in trainer.callback_metrics.items():
            self.record[key] = float(value)
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.output.write_text(json.dumps(self.record, indent=2))
