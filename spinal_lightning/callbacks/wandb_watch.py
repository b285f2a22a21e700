"""Opt-in W&B ``watch``: histograms of gradients and/or weights during training."""

from __future__ import annotations

from typing import Literal

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_warn


class WandbWatch(L.Callback):
    """Call ``wandb.watch`` on the model at fit start and ``unwatch`` at fit end, on rank 0 only.

    Histograms add work to every ``log_freq``-th step and fill the run with a histogram per tensor,
    which is why this is off unless the callback is configured.

    Args:
        log: ``"gradients"``, ``"parameters"`` (weights) or ``"all"``.
        log_freq: steps between two histograms.
    """

    def __init__(
        self, log: Literal["gradients", "parameters", "all"] = "gradients", log_freq: int = 100
    ) -> None:
        if log_freq < 1:
            raise ValueError(f"log_freq must be a positive number of steps, got {log_freq!r}.")
        # Lightning replaces every callback's ``log`` attribute with the module's ``log`` method.
        self.histograms = log
        self.log_freq = log_freq
        self._loggers: list[WandbLogger] = []

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not self._loggers:
            rank_zero_warn("WandbWatch is configured, but the trainer has no W&B logger; nothing is watched.")
        for logger in self._loggers:
            logger.watch(pl_module, log=self.histograms, log_freq=self.log_freq, log_graph=False)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for logger in self._loggers:
            logger.experiment.unwatch(pl_module)
        self._loggers = []
