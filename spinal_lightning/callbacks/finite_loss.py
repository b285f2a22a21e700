"""``FiniteLossGuard``: stop training on a NaN or infinite loss, before it reaches the weights."""

from __future__ import annotations

import os

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from spinal_lightning.errors import TrainingDivergedError


class FiniteLossGuard(Callback):
    """Raise ``TrainingDivergedError`` when the training loss is NaN or infinite.

    The loss is checked before ``backward``, so the optimizer never applies the bad step, and every
    checkpoint is checked for non-finite weights before it is written, so a diverged model never
    replaces the last good checkpoint. The error names the global step, the epoch, the batch index
    and the newest checkpoint on disk.
    """

    def __init__(self) -> None:
        self.batch_idx = -1

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch, batch_idx: int
    ) -> None:
        self.batch_idx = batch_idx

    def on_before_backward(
        self, trainer: L.Trainer, pl_module: L.LightningModule, loss: torch.Tensor
    ) -> None:
        if torch.isfinite(loss.detach()).all():
            return
        value = loss.detach().float().flatten()[0].item()
        raise TrainingDivergedError(
            f"The training loss is {value} at global step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}, batch {self.batch_idx}), so training stopped before this "
            f"step changed the weights. {describe_last_checkpoint(trainer)}"
        )

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        bad = [
            name
            for name, tensor in checkpoint.get("state_dict", {}).items()
            if torch.is_floating_point(tensor) and not torch.isfinite(tensor).all()
        ]
        if bad:
            raise TrainingDivergedError(
                f"The weights hold NaN or infinite values after global step {trainer.global_step} "
                f"(epoch {trainer.current_epoch}, batch {self.batch_idx}) in {len(bad)} tensors, "
                f"first {bad[0]}, so the checkpoint was not written. {describe_last_checkpoint(trainer)}"
            )


def describe_last_checkpoint(trainer: L.Trainer) -> str:
    """Return sentences naming the newest checkpoint the trainer's callbacks wrote, and what to do."""
    paths = set()
    for callback in trainer.checkpoint_callbacks:
        paths.update(getattr(callback, name, "") for name in ("last_model_path", "best_model_path"))
    existing = [path for path in paths if path and os.path.isfile(path)]
    if not existing:
        return (
            "No checkpoint was written before it. Lower the learning rate or check the data, then "
            "start the run again."
        )
    newest = max(existing, key=os.path.getmtime)
    return (
        f"The last good checkpoint is {newest}. Lower the learning rate or check the data, then "
        f"resume with --ckpt_path {newest}."
    )
