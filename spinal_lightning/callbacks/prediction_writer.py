"""``PredictionCSVWriter``: write ``predict`` results as a CSV of file, class and probability."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.utilities.rank_zero import rank_zero_info, rank_zero_warn

COLUMNS = ("file", "prediction", "class_name", "probability", "error")


class PredictionCSVWriter(BasePredictionWriter):
    """Append one CSV row per input as each predict batch finishes.

    Reads the ``prediction`` and ``probability`` of ``SpinalClassifier.predict_step`` and the
    file names of ``PredictionDataModule``. Inputs that could not be read get an empty prediction
    and their error in the ``error`` column, and are listed in a warning at the end. The CSV is
    written to ``<output>.partial`` and renamed to ``output`` when prediction finishes, so a file at
    ``output`` is always complete.

    Args:
        output: path of the CSV file.
    """

    def __init__(self, output: str = "predictions.csv") -> None:
        super().__init__(write_interval="batch")
        self.output = Path(output)
        self.unreadable: list[str] = []
        self._handle = None
        self._writer = None

    @property
    def partial_path(self) -> Path:
        return self.output.with_name(self.output.name + ".partial")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.is_global_zero:
            # NOTE: under DDP only rank 0 writes, so the rows of the other ranks are missing.
            return
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.unreadable = []
        self._handle = open(self.partial_path, "w", newline="", encoding="utf-8")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(COLUMNS)

    def write_on_batch_end(
        self, trainer, pl_module, prediction, batch_indices, batch, batch_idx, dataloader_idx
    ):
        if self._writer is None:
            return
        datamodule = trainer.datamodule
        names = getattr(datamodule, "names", None)
        class_names = getattr(datamodule, "class_names", None)
        _, indices, errors = batch
        for row, index in enumerate(indices.tolist()):
            name = names[index] if names else str(index)
            if errors[row]:
                self.unreadable.append(f"{name} ({errors[row]})")
                self._writer.writerow((name, "", "", "", errors[row]))
                continue
            label = int(prediction["prediction"][row])
            class_name = class_names[label] if class_names else ""
            probability = float(prediction["probability"][row])
            self._writer.writerow((name, label, class_name, f"{probability:.6f}", ""))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._handle is None:
            return
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        self._handle = self._writer = None
        os.replace(self.partial_path, self.output)
        rank_zero_info(f"Wrote predictions to {self.output}.")
        if self.unreadable:
            rank_zero_warn(
                f"{len(self.unreadable)} input(s) could not be read and have no prediction: "
                + "; ".join(self.unreadable)
            )
