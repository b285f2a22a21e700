"""Command line: ``python -m spinal_lightning fit|validate|test|predict --config CONFIG``.

The only place that links the data to the model: the datamodule reports ``num_classes`` and
``in_channels``, and the CLI passes them to the model, so no size is typed twice.

Example:
    python -m spinal_lightning fit --config configs/vgg_spinal.yaml --trainer.max_epochs=5
"""

from __future__ import annotations

import os
import sys

import lightning as L
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from spinal_lightning.errors import format_user_error, is_user_error
from spinal_lightning.module import SpinalClassifier
from spinal_lightning.precision import SpinalTrainer


class SpinalCLI(LightningCLI):
    """LightningCLI with the data-to-model links of this project."""

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        # The datamodule's sizes are properties of the instantiated object, so the links apply then.
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.in_channels", "model.in_channels", apply_on="instantiate")


def main(args: list[str] | None = None) -> None:
    """Run the CLI; a user error (bad value, missing data) ends with one message and exit code 1."""
    try:
        SpinalCLI(
            SpinalClassifier,
            L.LightningDataModule,
            subclass_mode_data=True,
            # Accepts precision: auto (the default), resolved per machine before the Trainer is built.
            trainer_class=SpinalTrainer,
            args=args,
            auto_configure_optimizers=False,
            save_config_kwargs={"overwrite": True},
        )
    except Exception as error:
        if not is_user_error(error) or os.environ.get("SPINAL_LIGHTNING_TRACEBACK"):
            raise
        print(format_user_error(error), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
