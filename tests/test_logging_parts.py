"""The parts behind the W&B logging, checked in-process: mode choice, metrics, callbacks, CLI wiring."""

from __future__ import annotations

import csv
import http.server
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import lightning as L
import pytest
import torch
import yaml
from conftest import CONFIGS, cli_env
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from spinal_lightning import SpinalHead
from spinal_lightning.callbacks.classification_report import ClassificationReport, class_names, per_class_rows
from spinal_lightning.callbacks.parameter_count import ParameterCountReport
from spinal_lightning.callbacks.progress import ThroughputProgressBar, add_default_progress_bar, batch_size_of
from spinal_lightning.cli import SpinalCLI
from spinal_lightning.data import FashionMNISTDataModule
from spinal_lightning.loggers import WandbRunLogger, resolve_wandb_mode
from spinal_lightning.metrics import MulticlassErrorRate
from spinal_lightning.module import SpinalClassifier


@pytest.mark.parametrize(
    ("offline", "env", "expected"),
    [
        (None, {}, "offline"),
        (None, {"WANDB_API_KEY": "0" * 40}, "online"),
        (None, {"WANDB_MODE": "online"}, "online"),
        (None, {"WANDB_MODE": "offline", "WANDB_API_KEY": "0" * 40}, "offline"),
        (None, {"WANDB_MODE": "dryrun"}, "offline"),
        (None, {"WANDB_MODE": "disabled"}, "disabled"),
        (True, {"WANDB_API_KEY": "0" * 40}, "offline"),
        (False, {}, "online"),
    ],
)
def test_wandb_mode_choice(monkeypatch, offline, env, expected):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert resolve_wandb_mode(offline) == expected


def test_wandb_mode_rejects_unknown_env(monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "sometimes")

    with pytest.raises(ValueError, match="WANDB_MODE='sometimes'"):
        resolve_wandb_mode(None)


def test_wandb_logger_run_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    logger = WandbRunLogger(name="vgg_spinal", save_dir=str(tmp_path), version="abc12345")

    assert logger.mode == "offline"
    assert logger.save_dir == str(tmp_path)
    assert logger.name == "vgg_spinal"
    assert logger.version == "abc12345"
    assert logger.log_dir == str(tmp_path / "vgg_spinal" / "abc12345")
    assert logger._wandb_init["dir"] == logger.log_dir


def test_wandb_logger_new_ids_differ(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")
    L.seed_everything(0)
    first = WandbRunLogger(save_dir=str(tmp_path)).version
    L.seed_everything(0)
    second = WandbRunLogger(save_dir=str(tmp_path)).version

    assert first != second
    assert len(first) == 8


def test_wandb_logger_offline_drops_log_model(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "offline")

    with pytest.warns(UserWarning, match="needs an online W&B run"):
        logger = WandbRunLogger(save_dir=str(tmp_path), log_model=True)
    assert logger._log_model is False


def test_error_rate_is_one_minus_accuracy():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 10, generator=generator)
    labels = torch.randint(0, 10, (50,), generator=generator)
    expected = 1 - (logits.argmax(dim=1) == labels).float().mean()

    error = MulticlassErrorRate(10, average="micro")(logits, labels)

    assert error.item() == pytest.approx(expected.item())


@pytest.mark.parametrize(
    ("num_classes", "expected"), [(10, {"acc", "error", "acc_top5"}), (5, {"acc", "error"})]
)
def test_stage_metrics_top5_needs_six_classes(num_classes, expected):
    metrics = SpinalClassifier.build_metrics("val", num_classes)

    assert set(metrics.keys(keep_base=True)) == expected
    assert set(metrics.keys()) == {f"val/{name}" for name in expected}


def test_class_names_from_datamodule():
    names = class_names(FashionMNISTDataModule(), 10)

    assert names[0] == "T-shirt/top"
    assert names[9] == "Ankle boot"


def test_class_names_fall_back_to_indices():
    assert class_names(FashionMNISTDataModule(), 3) == ["0", "1", "2"]
    assert class_names(object(), 2) == ["0", "1"]


def test_per_class_rows_accuracy_and_support():
    matrix = torch.tensor([[3, 1, 0], [0, 2, 2], [0, 0, 0]])

    rows = per_class_rows(matrix, ["a", "b", "c"])

    assert rows[0] == ["a", 0.75, 4]
    assert rows[1] == ["b", 0.5, 4]
    assert rows[2][0] == "c"
    assert math.isnan(rows[2][1])
    assert rows[2][2] == 0


def test_throughput_over_window():
    bar = ThroughputProgressBar(window=2)
    assert bar.images_per_second() is None

    for moment, count in [(0.0, 0), (1.0, 100), (2.0, 100), (3.0, 50)]:
        bar._batch_ends.append((moment, count))

    # The window keeps the last three batch ends: 150 images between t=1 and t=3.
    assert bar.images_per_second() == pytest.approx(75.0)


def test_throughput_rejects_empty_window():
    with pytest.raises(ValueError, match="window must be a positive number"):
        ThroughputProgressBar(window=0)


def test_batch_size_of_common_batches():
    images = torch.zeros(7, 1, 4, 4)

    assert batch_size_of((images, torch.zeros(7))) == 7
    assert batch_size_of({"image": images}) == 7
    assert batch_size_of(images) == 7
    assert batch_size_of(None) == 0


def test_default_progress_bar_added_when_enabled():
    config = {"enable_progress_bar": None, "callbacks": []}

    add_default_progress_bar(config)

    assert [type(callback) for callback in config["callbacks"]] == [ThroughputProgressBar]


@pytest.mark.parametrize(
    "config",
    [
        {"enable_progress_bar": False, "callbacks": []},
        {"enable_progress_bar": True, "callbacks": [TQDMProgressBar()]},
        {"enable_progress_bar": None, "callbacks": [RichProgressBar()]},
    ],
)
def test_default_progress_bar_not_added(config):
    before = list(config["callbacks"])

    add_default_progress_bar(config)

    assert config["callbacks"] == before


def test_parameter_table_formats_counts():
    table = ParameterCountReport.format_table(
        {"model/params/total": 3_629_770, "model/params/head": 121_354, "model/params/head_reduction": 1.135}
    )
    labels = list(table.columns[0].cells)
    values = list(table.columns[1].cells)

    assert labels == ["total", "head", "head reduction (FC / head)"]
    assert values == ["3,629,770", "121,354", "1.14x"]


def test_cli_switches_to_csv_logger_in_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli = SpinalCLI(
        SpinalClassifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        run=False,
        args=[
            "--config",
            str(CONFIGS / "vgg_spinal.yaml"),
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.name=vgg_spinal",
            "--trainer.accelerator=cpu",
        ],
    )

    assert isinstance(cli.trainer.logger, CSVLogger)
    assert cli.trainer.logger.save_dir == "runs"
    assert cli.trainer.logger.name == "vgg_spinal"
    assert isinstance(cli.trainer.progress_bar_callback, ThroughputProgressBar)


class TinyBackbone(nn.Module):
    """A 2-layer backbone for 1 x 4 x 4 images, so a Lightning fit takes well under a second."""

    num_features = 8

    def __init__(self, in_channels: int = 1) -> None:
        super().__init__()
        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(in_channels * 16, self.num_features), nn.ReLU())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.layers(images)


def tiny_loader(num_samples: int = 24, num_classes: int = 3) -> DataLoader:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(num_samples, 1, 4, 4, generator=generator)
    labels = torch.arange(num_samples) % num_classes
    return DataLoader(TensorDataset(images, labels), batch_size=8)


def tiny_trainer(tmp_path: Path, callbacks: list) -> L.Trainer:
    return L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=CSVLogger(tmp_path, name="tiny"),
        callbacks=callbacks,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )


def tiny_model() -> SpinalClassifier:
    return SpinalClassifier(
        backbone=TinyBackbone,
        head=lambda in_features, num_classes: SpinalHead(in_features, num_classes, layer_width=4),
        num_classes=3,
        channels_last=False,
    )


def test_classification_report_writes_files_without_wandb(tmp_path):
    trainer = tiny_trainer(tmp_path, [ClassificationReport()])

    trainer.test(tiny_model(), dataloaders=tiny_loader(), verbose=False)

    folder = tmp_path / "tiny" / "version_0"
    assert (folder / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    with open(folder / "per_class_accuracy.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["class"] for row in rows] == ["0", "1", "2"]
    assert [int(row["support"]) for row in rows] == [8, 8, 8]


def test_parameter_counts_reach_csv_hparams(tmp_path):
    model = tiny_model()
    trainer = tiny_trainer(tmp_path, [ParameterCountReport()])

    trainer.fit(model, train_dataloaders=tiny_loader(), val_dataloaders=tiny_loader())

    hparams = yaml.safe_load((tmp_path / "tiny" / "version_0" / "hparams.yaml").read_text())
    head = sum(parameter.numel() for parameter in model.head.parameters())
    assert hparams["model/params/head"] == head
    assert hparams["model/params/backbone"] == 16 * 8 + 8
    assert hparams["model/params/total"] == head + 16 * 8 + 8


def test_best_validation_accuracy_is_running_max(tmp_path):
    model = tiny_model()
    trainer = tiny_trainer(tmp_path, [])
    trainer.fit_loop.max_epochs = 3

    trainer.fit(model, train_dataloaders=tiny_loader(), val_dataloaders=tiny_loader())

    metrics = {}
    with open(tmp_path / "tiny" / "version_0" / "metrics.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            if row.get("val/acc"):
                metrics.setdefault("val/acc", []).append(float(row["val/acc"]))
                metrics.setdefault("val/acc_best", []).append(float(row["val/acc_best"]))
    expected = [max(metrics["val/acc"][: index + 1]) for index in range(3)]
    assert metrics["val/acc_best"] == pytest.approx(expected)


def test_wandb_watch_logs_histograms(monkeypatch, tmp_path):
    import wandb
    from test_wandb_logging import read_wandb_log

    from spinal_lightning.callbacks.wandb_watch import WandbWatch

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    logger = WandbRunLogger(name="tiny", save_dir=str(tmp_path))
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=logger,
        callbacks=[WandbWatch(log="all", log_freq=1)],
        log_every_n_steps=1,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    try:
        trainer.fit(tiny_model(), train_dataloaders=tiny_loader())
        sync_dir = Path(logger.experiment.sync_dir)
    finally:
        wandb.finish()
        # wandb exports its service address as WANDB_SERVICE, and CLI processes that later tests
        # start would attach to this process's service instead of writing their own run files.
        wandb.teardown()
        os.environ.pop("WANDB_SERVICE", None)

    keys = read_wandb_log(sync_dir / f"run-{logger.version}.wandb").history_keys()
    assert "gradients/head.output.0.weight" in keys
    assert "parameters/head.output.0.weight" in keys


class RejectingHandler(http.server.BaseHTTPRequestHandler):
    """Local stand-in for a W&B server: returns HTTP 500 for every request and records its path."""

    paths: list[str] = []

    def _reject(self) -> None:
        self.paths.append(self.path)
        self.send_response(500)
        self.end_headers()

    do_GET = do_POST = _reject

    def log_message(self, *args) -> None:
        pass


def test_online_without_login_falls_back_offline(tmp_path):
    # WANDB_BASE_URL points at a server this test starts, so no request can leave the machine.
    server = http.server.HTTPServer(("127.0.0.1", 0), RejectingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    script = (
        "from spinal_lightning.loggers import WandbRunLogger\n"
        "logger = WandbRunLogger(name='fallback', save_dir='runs')\n"
        "print('mode before', logger.mode)\n"
        "experiment = logger.experiment\n"
        "print('mode after', logger.mode, 'offline', experiment.offline)\n"
        "logger.finalize('success')\n"
    )
    try:
        process = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=cli_env(
                WANDB_MODE="online",
                WANDB_BASE_URL=f"http://127.0.0.1:{server.server_port}",
                HOME=str(tmp_path),  # no ~/.netrc, so wandb has no stored key
            ),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        server.shutdown()

    assert process.returncode == 0, process.stderr[-3000:]
    assert "mode before online" in process.stdout
    assert "mode after offline offline True" in process.stdout
    assert "The online W&B run could not start" in process.stderr
    assert "wandb sync runs/fallback/" in process.stderr
