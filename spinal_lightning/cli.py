"""Command line: ``python -m spinal_lightning fit|validate|test|predict --config CONFIG``.

The only place that links the data to the model: the datamodule reports ``num_classes`` and
``in_channels``, and the CLI passes them to the model, so no size is typed twice.

Example:
    python -m spinal_lightning fit --config configs/vgg_spinal.yaml --trainer.max_epochs=5
"""

from __future__ import annotations

import os
import pickle
import signal
import sys

import lightning as L
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.utilities.exceptions import SIGTERMException

from spinal_lightning.callbacks.progress import add_default_progress_bar
from spinal_lightning.callbacks.run_config import RunConfigSaver
from spinal_lightning.checkpoint_io import describe_load_failure
from spinal_lightning.errors import CheckpointError, format_user_error, is_user_error
from spinal_lightning.module import SpinalClassifier
from spinal_lightning.precision import SpinalTrainer
from spinal_lightning.resume import prepare_resume

# Checkpoints are written atomically and loaded weights-only unless a config names other plugins.
DEFAULT_PLUGINS = [{"class_path": "spinal_lightning.checkpoint_io.AtomicCheckpointIO"}]

# Parse errors are raised instead of printed with the whole usage text, so main() reports them as
# one paragraph like every other user error. Abbreviations are off: argparse would otherwise read
# the typo --trainer.max_epoch as --trainer.max_epochs without a word.
PARSER_OPTIONS = {"exit_on_error": False, "allow_abbrev": False}
PARSER_KWARGS = {
    **PARSER_OPTIONS,
    **{subcommand: dict(PARSER_OPTIONS) for subcommand in ("fit", "validate", "test", "predict")},
}


class SpinalCLI(LightningCLI):
    """LightningCLI with the data-to-model links of this project."""

    def __init__(
        self, *args, save_config_callback=RunConfigSaver, trainer_class=SpinalTrainer, **kwargs
    ) -> None:
        # RunConfigSaver keeps one config.yaml per run folder and puts the config into W&B.
        # SpinalTrainer accepts precision: auto (the configs' default), resolved per machine.
        super().__init__(
            *args, save_config_callback=save_config_callback, trainer_class=trainer_class, **kwargs
        )

    def instantiate_trainer(self, **kwargs) -> L.Trainer:
        add_default_progress_bar(self._get(self.config_init, "trainer", default={}))
        return super().instantiate_trainer(**kwargs)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The datamodule's sizes are properties of the instantiated object, so the links apply then.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")
        parser.set_defaults({"trainer.plugins": DEFAULT_PLUGINS})

    def _parse_ckpt_path(self) -> None:
        # LightningCLI reads the model's hyperparameters from --ckpt_path with a weights-only
        # torch.load before anything is built; turn its raw errors into one readable message.
        try:
            super()._parse_ckpt_path()
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as error:
            subcommand_config = self.config[self.config.subcommand]
            if isinstance(error, pickle.UnpicklingError) and subcommand_config.get("weights_only") is False:
                # The user trusts the file; the trainer loads it with weights_only=False, and the
                # model arguments come from the config alone.
                return
            ckpt_path = str(subcommand_config.get("ckpt_path"))
            raise CheckpointError(describe_load_failure(ckpt_path, error)) from error

    def before_instantiate_classes(self) -> None:
        # `--ckpt_path last` must continue the previous run's folder (and W&B run), not a new one.
        if self.subcommand == "fit":
            prepare_resume(self.config[self.subcommand])

    def before_fit(self) -> None:
        # PyTorch's DistributedDataParallel raises "SyncBatchNorm layers only work with GPU modules"
        # for a CPU model. This check runs before any worker process starts and names the fix.
        if self.config.fit.trainer.sync_batchnorm and isinstance(self.trainer.accelerator, CPUAccelerator):
            raise ValueError(
                "trainer.sync_batchnorm=true is not supported on the CPU accelerator of this run, because "
                "PyTorch's SyncBatchNorm runs only on GPUs and similar accelerators. "
                "Set --trainer.sync_batchnorm=false, or use --config configs/trainer/ddp_cpu.yaml "
                "for DDP on CPU processes."
            )


def main(args: list[str] | None = None) -> None:
    """Run the CLI; a user error (bad value, missing data) ends with one message and exit code 1."""
    # The head comparison is a command of its own that starts one fit + test run per head and seed.
    command_line = sys.argv[1:] if args is None else args
    if command_line[:1] == ["compare"]:
        from spinal_lightning.compare import main as compare_main

        return compare_main(command_line[1:])
    try:
        SpinalCLI(
            SpinalClassifier,
            L.LightningDataModule,
            subclass_mode_data=True,
            args=args,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
            parser_kwargs=PARSER_KWARGS,
        )
    except SIGTERMException:
        # Lightning raises it as SystemExit() with status 0 after the callbacks saved the run. A
        # scheduler must still see a terminated job, so exit with the status of an unhandled SIGTERM.
        sys.exit(128 + signal.SIGTERM)
    except Exception as error:
        if not is_user_error(error) or os.environ.get("SPINAL_LIGHTNING_TRACEBACK"):
            raise
        print(format_user_error(error), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
