"""The LightningModule: a backbone and a classifier head trained with cross-entropy."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

# Factories that the config fills in: everything but the sizes, which come from the data and the
# backbone. In YAML they are written as ``class_path`` + ``init_args`` without those sizes.
BackboneFactory = Callable[[int], nn.Module]  # in_channels -> module with ``num_features``
HeadFactory = Callable[[int, int], nn.Module]  # (in_features, num_classes) -> head

STAGES = ("train", "val", "test")


class SpinalClassifier(L.LightningModule):
    """Image classifier made of a feature-extracting backbone and a pluggable head.

    Args:
        backbone: callable that takes ``in_channels`` and returns a module with a ``num_features``
            attribute whose ``forward`` returns flat features (``VGG5``, ``TorchvisionBackbone``).
        head: callable that takes ``(in_features, num_classes)`` and returns the classifier head
            (``SpinalHead``, ``FCHead``).
        num_classes: number of classes; the CLI links it from the datamodule.
        in_channels: image channels; the CLI links it from the datamodule.
        optimizer: callable that takes the trainable parameters and returns the optimizer.
        scheduler: optional callable that takes the optimizer and returns a learning-rate
            scheduler. A ``ReduceLROnPlateau`` (or subclass) watches ``monitor``.
        monitor: metric a plateau scheduler watches.
        freeze_backbone: train only the head; the backbone also stays in eval mode, so its
            BatchNorm statistics do not move.
        channels_last: keep images and convolution weights in channels-last memory layout, which
            the oneDNN (CPU) and cuDNN convolution kernels run faster, most of all under bf16.
        label_smoothing: label smoothing of the cross-entropy loss.
        compile: compile the backbone and the head with ``torch.compile`` when training starts.
            The first steps then take longer while kernels are built (a CPU needs a C++
            compiler), and later steps can be faster. Parameter names in checkpoints do not change.
    """

    def __init__(
        self,
        backbone: BackboneFactory,
        head: HeadFactory,
        num_classes: int = 10,
        in_channels: int = 1,
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        monitor: str = "val/acc",
        freeze_backbone: bool = False,
        channels_last: bool = True,
        label_smoothing: float = 0.0,
        compile: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "head", "optimizer", "scheduler"])

        self.backbone = backbone(in_channels)
        if not isinstance(getattr(self.backbone, "num_features", None), int):
            raise TypeError(
                f"The backbone {type(self.backbone).__name__} has no integer attribute num_features; "
                "a backbone must report the width of the flat features it returns."
            )
        self.head = head(self.backbone.num_features, num_classes)

        self.num_classes = num_classes
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.monitor = monitor
        self.freeze_backbone = freeze_backbone
        self.channels_last = channels_last
        self.label_smoothing = label_smoothing
        self.compile_model = compile
        self._compiled = False

        if freeze_backbone:
            self.backbone.requires_grad_(False)
        if channels_last:
            self.backbone.to(memory_format=torch.channels_last)

        # One metric collection per stage, because each keeps its own running state. ModuleDict
        # keys cannot be "train" (an nn.Module method), hence the "_metrics" suffix.
        self.metrics = nn.ModuleDict(
            {f"{stage}_metrics": self.build_metrics(stage, num_classes) for stage in STAGES}
        )

    @staticmethod
    def build_metrics(stage: str, num_classes: int) -> MetricCollection:
        """Return the metrics of one stage, logged as ``<stage>/<name>``."""
        return MetricCollection({"acc": MulticlassAccuracy(num_classes, average="micro")}, prefix=f"{stage}/")

    def configure_model(self) -> None:
        # Lightning calls this hook at the start of every fit, validate, test and predict, so compile
        # once. Compilation itself waits for the first forward pass, on the final device.
        # Module.compile keeps the parameter names, so checkpoints load with or without it.
        if self.compile_model and not self._compiled:
            self.backbone.compile()
            self.head.compile()
            self._compiled = True

    def train(self, mode: bool = True):
        super().train(mode)
        if self.freeze_backbone:
            self.backbone.eval()
        return self

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.channels_last and images.ndim == 4:
            images = images.contiguous(memory_format=torch.channels_last)
        return self.head(self.backbone(images))

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)

        metrics = self.metrics[f"{stage}_metrics"]
        metrics.update(logits.detach(), labels)

        # The epoch loss is averaged over processes under DDP; the metric objects sync their own
        # state, which counts every sample once.
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            sync_dist=not on_step,
            batch_size=len(labels),
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        probabilities = self(images).float().softmax(dim=1)
        confidence, prediction = probabilities.max(dim=1)
        return {"prediction": prediction, "probability": confidence, "probabilities": probabilities}

    def configure_optimizers(self):
        parameters = [parameter for parameter in self.parameters() if parameter.requires_grad]
        optimizer = self.optimizer_factory(parameters)
        if self.scheduler_factory is None:
            return optimizer

        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            # A plateau scheduler steps once per epoch on a validation metric.
            config.update(monitor=self.monitor, interval="epoch")
        return {"optimizer": optimizer, "lr_scheduler": config}
