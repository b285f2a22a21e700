"""Log the model's parameter counts once per run and print them as a table."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import WandbLogger
from rich.console import Console
from rich.table import Table

from spinal_lightning.params import KEY_PREFIX, HeadFactory, parameter_counts

# Row labels of the printed table, in print order.
ROW_LABELS = {
    "total": "total",
    "trainable": "trainable",
    "backbone": "backbone",
    "head": "head",
    "replaced_fc_head": "FC head it replaces",
    "head_reduction": "head reduction (FC / head)",
}


class ParameterCountReport(L.Callback):
    """Count the parameters of the model's ``backbone`` and ``head`` and report them at fit start.

    The counts (see ``spinal_lightning.params.parameter_counts``) go to every logger's
    hyperparameters and, for W&B, also to the run summary, under ``model/params/...``, and are
    printed as a table. Only rank 0 logs and prints.

    Args:
        fc_head: factory ``(in_features, num_classes) -> head`` of the FC head a Spinal head is
            compared with, for example ``class_path: spinal_lightning.FCHead`` with its
            ``init_args``. ``None`` uses the backbone's own FC head: the stock classifier shape of
            a torchvision backbone, or the SpinalNet paper's FC head for VGG-5.
    """

    def __init__(self, fc_head: HeadFactory | None = None) -> None:
        self.fc_head = fc_head
        self.counts: dict[str, int | float] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        for attribute in ("backbone", "head", "num_classes"):
            if not hasattr(pl_module, attribute):
                raise TypeError(
                    f"ParameterCountReport needs a model with backbone, head and num_classes attributes, "
                    f"but {type(pl_module).__name__} has no {attribute!r}. Remove the callback from "
                    "trainer.callbacks for this model."
                )

        self.counts = parameter_counts(
            pl_module.backbone, pl_module.head, pl_module.num_classes, self.fc_head
        )
        for logger in trainer.loggers:
            logger.log_hyperparams(self.counts)
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update(self.counts)

        Console().print(self.format_table(self.counts))

    @staticmethod
    def format_table(counts: dict[str, int | float]) -> Table:
        """Return the counts as a Rich table, integers with thousands separators."""
        table = Table(title="Parameters", title_justify="left")
        table.add_column("part")
        table.add_column("parameters", justify="right")
        for name, label in ROW_LABELS.items():
            value = counts.get(f"{KEY_PREFIX}/{name}")
            if value is None:
                continue
            table.add_row(label, f"{value:.2f}x" if isinstance(value, float) else f"{value:,}")
        return table
