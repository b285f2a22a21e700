"""The command line as users type it: configs, data-to-model links, errors, fit then test."""

import re
from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import CONFIGS, FAST_TRAINER_ARGS, read_csv_metrics, run_cli

from spinal_lightning.cli import SpinalCLI, main
from spinal_lightning.data import FashionMNISTDataModule
from spinal_lightning.module import SpinalClassifier


def build_from_config(config: str, *overrides: str) -> SpinalCLI:
    return SpinalCLI(
        SpinalClassifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        auto_configure_optimizers=False,
        run=False,
        args=["--config", str(CONFIGS / config), "--trainer.logger=false", *overrides],
    )


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@pytest.mark.parametrize(
    ("config", "head_class", "head_params", "total_params"),
    [
        ("vgg_spinal.yaml", "SpinalHead", 121_354, 3_629_770),
        ("vgg_fc.yaml", "FCHead", 137_738, 3_646_154),
    ],
)
def test_config_builds_paper_model(config, head_class, head_params, total_params):
    cli = build_from_config(config)

    assert type(cli.model.head).__name__ == head_class
    assert count_parameters(cli.model.head) == head_params
    assert count_parameters(cli.model) == total_params


def test_sizes_are_linked_from_datamodule():
    cli = build_from_config("vgg_spinal.yaml")

    assert isinstance(cli.datamodule, FashionMNISTDataModule)
    assert cli.model.hparams.num_classes == cli.datamodule.num_classes == 10
    assert cli.model.backbone.in_channels == cli.datamodule.in_channels == 1
    assert cli.model.head.in_features == cli.model.backbone.num_features == 256


def test_unknown_key_is_one_clear_message(tmp_path):
    result = run_cli(
        ["fit", "--config", str(CONFIGS / "vgg_spinal.yaml"), "--model.head.init_args.layer_wdth=64"],
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "layer_wdth" in result.stderr


def test_abbreviated_option_is_rejected(tmp_path):
    # argparse would read --trainer.max_epoch as --trainer.max_epochs; a typo must not train.
    result = run_cli(["fit", "--config", str(CONFIGS / "digits_spinal.yaml"), "--trainer.max_epoch=1"], cwd=tmp_path)

    assert result.returncode == 1
    assert "unrecognized arguments: --trainer.max_epoch=1" in result.stderr
    assert "Run the same command with --help" in result.stderr
    assert not (tmp_path / "runs").exists()


def test_zero_head_width_is_one_clear_message(tmp_path):
    result = run_cli(
        ["fit", "--config", str(CONFIGS / "vgg_spinal.yaml"), "--model.head.init_args.layer_width=0"],
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "layer_width must be a positive integer, got 0" in result.stderr


def test_missing_data_is_one_clear_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(FashionMNISTDataModule, "system_dirs", (str(tmp_path / "no-package"),))
    args = [
        "fit",
        "--config",
        str(CONFIGS / "vgg_spinal.yaml"),
        "--trainer.logger=false",
        f"--data.data_dir={tmp_path / 'data'}",
        *FAST_TRAINER_ARGS,
    ]

    with pytest.raises(SystemExit) as exit_info:
        main(args)

    stderr = capsys.readouterr().err
    assert exit_info.value.code == 1
    assert stderr.startswith("error: Fashion-MNIST data not found.")
    assert "download: true" in stderr
    assert "apt-get install dataset-fashion-mnist" in stderr


def evaluate_checkpoint(checkpoint: Path, batches: int, batch_size: int, data_dir: Path) -> float:
    """Compute test accuracy of ``checkpoint`` on the first test batches, without the Trainer."""
    model = SpinalClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()
    datamodule = FashionMNISTDataModule(data_dir=str(data_dir), batch_size=batch_size)
    datamodule.setup("test")

    correct = total = 0
    with torch.no_grad():
        for index, batch in enumerate(datamodule.test_dataloader()):
            if index == batches:
                break
            images, labels = datamodule.on_after_batch_transfer(batch, 0)
            correct += (model(images).argmax(dim=1) == labels).sum().item()
            total += len(labels)
    return correct / total


def test_fit_then_test_reproduces_checkpoint_accuracy(fashion_mnist_dir, tmp_path):
    config = str(CONFIGS / "vgg_spinal.yaml")
    common = [
        *FAST_TRAINER_ARGS,
        "--data.batch_size=50",
        f"--trainer.default_root_dir={tmp_path}",
        "--trainer.logger=CSVLogger",
        f"--trainer.logger.save_dir={tmp_path}",
        "--trainer.logger.name=csv",
    ]

    fit = run_cli(["fit", "--config", config, *common], cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    checkpoints = sorted(tmp_path.glob("csv/version_0/checkpoints/epoch*.ckpt"))
    assert len(checkpoints) == 1

    test = run_cli(["test", "--config", config, *common, f"--ckpt_path={checkpoints[0]}"], cwd=tmp_path)
    assert test.returncode == 0, test.stderr[-3000:]

    reported = read_csv_metrics(tmp_path / "csv/version_1/metrics.csv")["test/acc"]
    recomputed = evaluate_checkpoint(checkpoints[0], batches=4, batch_size=50, data_dir=tmp_path)
    assert reported == pytest.approx(recomputed, abs=1e-6)
    assert re.search(r"test/acc\s", test.stdout)


def test_torchvision_backbone_from_command_line():
    cli = build_from_config(
        "vgg_spinal.yaml", "--model.backbone=spinal_lightning.TorchvisionBackbone", "--model.backbone.name=resnet18"
    )

    assert cli.model.backbone.in_channels == 1
    assert cli.model.head.in_features == 512


def test_every_supported_backbone_name_exists_in_torchvision():
    import torchvision

    from spinal_lightning.backbones import SUPPORTED_NAMES

    missing = sorted(set(SUPPORTED_NAMES) - set(torchvision.models.list_models()))
    assert missing == []
