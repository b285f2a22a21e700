"""Save the resolved CLI config into the run's own folder and into the W&B run config."""

from __future__ import annotations

import os

import lightning as L
import yaml
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.cli import SaveConfigCallback
from lightning.pytorch.loggers import WandbLogger


def run_dir(trainer: L.Trainer) -> str:
    """Return the folder of this run, the parent of its ``checkpoints`` folder.

    That is ``save_dir/name/version`` of the first logger, the rule ModelCheckpoint uses, so a
    CSV logger gives ``runs/vgg_fc/version_3`` and ``WandbRunLogger`` gives ``runs/vgg_spinal/<run id>``.
    Without a logger it is ``default_root_dir``. Must be called on every process, because the folder is
    broadcast from rank 0, the only process with the W&B run id.
    """
    if trainer.loggers:
        logger = trainer.loggers[0]
        save_dir = logger.save_dir if logger.save_dir is not None else trainer.default_root_dir
        version = logger.version if isinstance(logger.version, str) else f"version_{logger.version}"
        folder = os.path.join(save_dir, str(logger.name), version)
    else:
        folder = trainer.default_root_dir
    return trainer.strategy.broadcast(folder)


class RunConfigSaver(SaveConfigCallback):
    """``SaveConfigCallback`` that writes ``config.yaml`` into the run's own folder.

    Lightning's callback writes to ``trainer.log_dir``, which for a W&B logger is the shared
    ``save_dir``: a second run there finds the first run's ``config.yaml`` and either stops with
    "already exists" or overwrites it. Here every run keeps its own copy next to its checkpoints, and
    the whole config also goes into the config of every W&B run, so the dashboard can filter and
    group runs by any CLI value (``model.head.init_args.layer_width`` and so on).
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.already_saved:
            return

        if self.save_to_log_dir:
            folder = run_dir(trainer)
            config_path = os.path.join(folder, self.config_filename)
            filesystem = get_filesystem(folder)

            if not self.overwrite:
                # Only rank 0 checks the file and broadcasts the result, so all processes stop together.
                exists = filesystem.isfile(config_path) if trainer.is_global_zero else False
                if trainer.strategy.broadcast(exists):
                    raise RuntimeError(
                        f"{config_path} already exists, and this run would overwrite it. Delete it, "
                        "start a new run folder (a new logger version), or pass "
                        'save_config_kwargs={"overwrite": True}.'
                    )

            # Only rank 0 writes, so processes do not race on the file.
            if trainer.is_global_zero:
                filesystem.makedirs(folder, exist_ok=True)
                self.parser.save(
                    self.config,
                    config_path,
                    skip_none=False,
                    overwrite=self.overwrite,
                    multifile=self.multifile,
                )

        if trainer.is_global_zero:
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Add the resolved config, as nested values, to the config of every W&B logger."""
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if not wandb_loggers:
            return
        config = yaml.safe_load(self.parser.dump(self.config, skip_none=False))
        for logger in wandb_loggers:
            logger.log_hyperparams(config)
