"""``RunCheckpoint``: Lightning's ``ModelCheckpoint`` plus what a resumable run needs.

On top of the best-by-metric files and ``last.ckpt`` of ``ModelCheckpoint`` it

- refreshes ``last.ckpt`` every ``last_every_n_train_steps`` optimizer steps, so a kill in a long
  epoch loses at most that many steps;
- writes ``last.ckpt`` when the run is interrupted by SIGTERM (pre-emption, ``kill``) or Ctrl+C,
  before Lightning exits;
- copies the resolved CLI config next to the checkpoints as ``config.yaml``.

Files are written through the trainer's checkpoint plugin, which the CLI sets to
``AtomicCheckpointIO`` (temporary file, fsync, rename).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.utilities.exceptions import SIGTERMException
from lightning.pytorch.utilities.rank_zero import rank_zero_info

log = logging.getLogger(__name__)

CONFIG_NAME = "config.yaml"


class RunCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` that also keeps ``last.ckpt`` fresh within epochs and on interrupts.

    Args:
        last_every_n_train_steps: rewrite ``last.ckpt`` every this many optimizer steps (0: only
            where ``ModelCheckpoint`` writes it, at the end of each validation). This does not
            touch the best-by-metric files, which keep comparing validation results only.
        save_config: write the resolved CLI config as ``config.yaml`` into the checkpoint folder.
        **kwargs: the arguments of ``ModelCheckpoint`` (``monitor``, ``mode``, ``save_last``, ...).
    """

    def __init__(self, *args, last_every_n_train_steps: int = 0, save_config: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if last_every_n_train_steps < 0:
            raise ValueError(
                f"last_every_n_train_steps must be >= 0 (0 turns it off), got {last_every_n_train_steps!r}."
            )
        if last_every_n_train_steps and not self.save_last:
            raise ValueError(
                f"last_every_n_train_steps={last_every_n_train_steps} needs save_last: true, "
                "because it rewrites last.ckpt."
            )
        self.last_every_n_train_steps = last_every_n_train_steps
        self.save_config = save_config
        self._periodic_step_saved: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if stage == "fit" and self.save_config and trainer.is_global_zero and self.dirpath is not None:
            self._write_config(trainer)

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        every = self.last_every_n_train_steps
        step = trainer.global_step
        if every and step % every == 0 and step != self._periodic_step_saved and not trainer.sanity_checking:
            self.write_last(trainer)
            self._periodic_step_saved = step

    def on_exception(
        self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, (SIGTERMException, KeyboardInterrupt)) or not self.save_last:
            # Other errors (a NaN loss, a full disk, a bug) may have left the weights or the disk in
            # a bad state, so the last good last.ckpt stays as it is.
            super().on_exception(trainer, pl_module, exception)
            return
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        path = self.write_last(trainer)
        reason = "SIGTERM" if isinstance(exception, SIGTERMException) else "Ctrl+C"
        rank_zero_info(
            f"Interrupted by {reason} at global step {trainer.global_step} (epoch {trainer.current_epoch}); "
            f"saved {path}. Resume with --ckpt_path last (or --ckpt_path {path})."
        )

    def write_last(self, trainer: L.Trainer) -> str:
        """Write ``last.ckpt`` now and return its path.

        Unlike ``ModelCheckpoint._save_checkpoint`` this leaves ``_last_global_step_saved`` alone, so
        a validation at the same step still writes its best-by-metric file.
        """
        # NOTE: format_checkpoint_name and _monitor_candidates are Lightning 2.6 internals of
        # ModelCheckpoint; a Lightning upgrade may rename them.
        path = self.format_checkpoint_name(self._monitor_candidates(trainer), self.CHECKPOINT_NAME_LAST)
        # The path is part of the callback state inside the file, so set it before saving.
        self.last_model_path = path
        trainer.save_checkpoint(path, self.save_weights_only)
        return path

    def _write_config(self, trainer: L.Trainer) -> None:
        saver = next(
            (callback for callback in trainer.callbacks if isinstance(callback, SaveConfigCallback)), None
        )
        if saver is None:
            return
        text = saver.parser.dump(saver.config, skip_none=False)
        folder = Path(self.dirpath)
        folder.mkdir(parents=True, exist_ok=True)
        temporary = folder / f".{CONFIG_NAME}.partial"
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, folder / CONFIG_NAME)
