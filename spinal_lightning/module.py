"""The LightningModule: a backbone and a classifier head trained with cross-entropy."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters
from torch import nn
from torchmetrics import MaxMetric, MeanMetric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from spinal_lightning.checkpoint_match import check_checkpoint_matches
from spinal_lightning.checks import check_model_matches_data
from spinal_lightning.metrics import MulticlassErrorRate


# Factories that the config fills in: everything but the sizes, which come from the data and the
# backbone. In YAML they are written as ``class_path`` + ``init_args`` without those sizes.
class BackboneFactory(Protocol):
    """Builds the backbone for images with ``in_channels`` channels, passed by keyword.

    A protocol rather than ``Callable[[int], nn.Module]``: jsonargparse then leaves out the
    parameter named ``in_channels`` wherever it is in the signature, not the first one, so
    ``TorchvisionBackbone(name, in_channels, weights)`` works from YAML too.
    """

    def __call__(self, in_channels: int) -> nn.Module: ...


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
        # Under LightningCLI the hyperparameters are the parsed config (class_path dicts), which
        # load_from_checkpoint needs to rebuild backbone and head. Callables passed from Python
        # cannot be stored in a weights-only checkpoint, so they are left out there.
        from_config = _given_hyperparameters.get() is not None
        self.save_hyperparameters(ignore=[] if from_config else ["backbone", "head", "optimizer", "scheduler"])

        self.backbone = backbone(in_channels=in_channels)
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
        # The epoch loss is a torchmetrics mean too: its sum and count states are summed over the
        # processes, which is exact when they see unequal sample counts. self.log(sync_dist=True)
        # is not, because Lightning 2.6 floors the averaged integer sample count there
        # (https://github.com/Lightning-AI/pytorch-lightning/issues/21859). "disable" keeps a NaN
        # loss visible; it also drops weights in torchmetrics 1.9, so the metric gets unweighted
        # per-sample losses.
        self.losses = nn.ModuleDict({f"{stage}_loss": MeanMetric(nan_strategy="disable") for stage in STAGES})
        self.best_val_acc = MaxMetric()
        # Rows are true classes, columns predicted ones; read at test end by ClassificationReport.
        self.test_confusion_matrix = MulticlassConfusionMatrix(num_classes)

    @staticmethod
    def build_metrics(stage: str, num_classes: int) -> MetricCollection:
        """Return the metrics of one stage, logged as ``<stage>/<name>``.

        ``acc`` (top-1), ``acc_top5`` (only with more than 5 classes, where it is not always 1) and
        ``error`` (1 - top-1 accuracy).
        """
        metrics = {
            "acc": MulticlassAccuracy(num_classes, average="micro"),
            "error": MulticlassErrorRate(num_classes, average="micro"),
        }
        if num_classes > 5:
            metrics["acc_top5"] = MulticlassAccuracy(num_classes, top_k=5, average="micro")
        # Compute groups update only the first metric of a group and copy its state to the others
        # when the collection is read, but Lightning computes each logged metric on its own, so
        # every metric keeps its own state.
        return MetricCollection(metrics, prefix=f"{stage}/", compute_groups=False)

    def setup(self, stage: str) -> None:
        # The trainer sets up the datamodule first, so its sizes are final here, before any step.
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None:
            check_model_matches_data(self, datamodule)

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
        # Per-sample losses feed the loss metric, so its epoch value is a mean over samples.
        sample_losses = F.cross_entropy(
            logits, labels, reduction="none", label_smoothing=self.label_smoothing
        )
        loss = sample_losses.mean()

        metrics = self.metrics[f"{stage}_metrics"]
        metrics.update(logits.detach(), labels)
        if stage == "test":
            self.test_confusion_matrix.update(logits.detach(), labels)

        # The metric objects sync their state over DDP processes when computed at epoch end, which
        # counts every sample once. A training step's loss is the local process's batch loss.
        loss_metric = self.losses[f"{stage}_loss"]
        loss_metric(sample_losses.detach())
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss_metric, on_step=on_step, on_epoch=True, prog_bar=True)
        for name, metric in metrics.items():
            show = name.endswith("/acc")  # the other metrics would crowd the progress bar
            self.log(name, metric, on_step=False, on_epoch=True, prog_bar=show, batch_size=len(labels))
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        # The sanity check before training must not count as a best accuracy. Computing the
        # accuracy a second time (Lightning computes it for the log too) only reads a few counters.
        if self.trainer.sanity_checking:
            return
        self.best_val_acc.update(self.metrics["val_metrics"]["acc"].compute())
        self.log("val/acc_best", self.best_val_acc.compute(), prog_bar=False)

    def test_step(self, batch, batch_idx: int) -> None:
        self._shared_step(batch, "test")

    def on_test_epoch_start(self) -> None:
        self.test_confusion_matrix.reset()

    def predict_step(self, batch, batch_idx: int) -> dict[str, torch.Tensor]:
        images = batch[0] if isinstance(batch, (list, tuple)) else batch
        probabilities = self(images).float().softmax(dim=1)
        confidence, prediction = probabilities.max(dim=1)
        return {"prediction": prediction, "probability": confidence, "probabilities": probabilities}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        # Name every mismatched weight here, before load_state_dict raises one long RuntimeError.
        if self.strict_loading:
            trainer = self._trainer
            source = "The checkpoint"
            if trainer is not None and trainer.ckpt_path:
                source = f"Checkpoint {str(trainer.ckpt_path)!r}"
            check_checkpoint_matches(self, checkpoint, source=source)

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
