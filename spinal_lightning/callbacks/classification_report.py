"""At test end, log a confusion-matrix image and a per-class accuracy table."""

from __future__ import annotations

import csv
import io
import os

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger

from spinal_lightning.callbacks.run_config import run_dir

CONFUSION_MATRIX_KEY = "test/confusion_matrix"
PER_CLASS_KEY = "test/per_class_accuracy"


def class_names(datamodule: object, num_classes: int) -> list[str]:
    """Return the datamodule's ``classes`` when it names every class, else ``"0"``, ``"1"``, ..."""
    names = getattr(datamodule, "classes", None)
    if names is not None and len(names) == num_classes:
        return [str(name) for name in names]
    return [str(index) for index in range(num_classes)]


def per_class_rows(matrix: torch.Tensor, names: list[str]) -> list[list]:
    """Return ``[class, accuracy, support]`` rows; accuracy is NaN for a class with no test sample."""
    support = matrix.sum(dim=1)
    correct = matrix.diagonal()
    rows = []
    for index, name in enumerate(names):
        count = int(support[index])
        accuracy = float(correct[index]) / count if count else float("nan")
        rows.append([name, accuracy, count])
    return rows


def plot_confusion_matrix(matrix: torch.Tensor, names: list[str]):
    """Draw the confusion matrix (rows: true class, columns: predicted class) as a matplotlib figure.

    The figure is built without pyplot, so it needs no display and leaves pyplot's backend alone.
    """
    from matplotlib.figure import Figure

    size = max(4.0, 0.5 * len(names) + 2)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    counts = matrix.cpu().numpy()
    image = axes.imshow(counts, cmap="Blues")
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04)

    # Numbers in the cells stay readable up to about 30 classes; beyond that only colours are drawn.
    if len(names) <= 30:
        threshold = counts.max() / 2 if counts.size else 0
        for row in range(counts.shape[0]):
            for column in range(counts.shape[1]):
                colour = "white" if counts[row, column] > threshold else "black"
                axes.text(
                    column, row, int(counts[row, column]), ha="center", va="center", color=colour, fontsize=7
                )

    ticks = range(len(names))
    axes.set_xticks(ticks, names, rotation=90)
    axes.set_yticks(ticks, names)
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    axes.set_title("Test confusion matrix")
    figure.tight_layout()
    return figure


class ClassificationReport(L.Callback):
    """Log the test confusion matrix as an image and the accuracy of every class as a table.

    Reads ``pl_module.test_confusion_matrix`` (a ``MulticlassConfusionMatrix``). Class names come
    from the datamodule's ``classes`` attribute when it has one. A W&B logger gets the image under
    ``test/confusion_matrix`` and a table under ``test/per_class_accuracy``; without one, the
    files ``confusion_matrix.png`` and ``per_class_accuracy.csv`` go into the run's folder.
    """

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        metric = getattr(pl_module, "test_confusion_matrix", None)
        if metric is None:
            raise TypeError(
                f"ClassificationReport needs a model with a test_confusion_matrix metric, but "
                f"{type(pl_module).__name__} has none. Remove the callback from trainer.callbacks."
            )

        # compute() gathers the counts of all processes, so every rank has to call it.
        matrix = metric.compute().long().cpu()
        folder = run_dir(trainer)
        if not trainer.is_global_zero:
            return

        names = class_names(trainer.datamodule, matrix.shape[0])
        rows = per_class_rows(matrix, names)
        figure = plot_confusion_matrix(matrix, names)
        wandb_loggers = [logger for logger in trainer.loggers if isinstance(logger, WandbLogger)]
        if wandb_loggers:
            self._log_to_wandb(wandb_loggers, figure, rows, trainer.global_step)
        else:
            self._save_files(folder, figure, rows)

    @staticmethod
    def _log_to_wandb(loggers: list[WandbLogger], figure, rows: list[list], step: int) -> None:
        import wandb
        from PIL import Image

        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
        buffer.seek(0)
        image = Image.open(buffer)
        for logger in loggers:
            logger.experiment.log(
                {
                    CONFUSION_MATRIX_KEY: wandb.Image(
                        image, caption="rows: true class, columns: predicted class"
                    ),
                    PER_CLASS_KEY: wandb.Table(columns=["class", "accuracy", "support"], data=rows),
                    "trainer/global_step": step,
                }
            )

    @staticmethod
    def _save_files(folder: str, figure, rows: list[list]) -> None:
        os.makedirs(folder, exist_ok=True)
        figure.savefig(os.path.join(folder, "confusion_matrix.png"), dpi=120)
        with open(os.path.join(folder, "per_class_accuracy.csv"), "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["class", "accuracy", "support"])
            writer.writerows(rows)
