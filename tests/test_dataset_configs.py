"""The data set and experiment configs compose with --config, and the CLI trains on each kind of data."""

from __future__ import annotations

import functools
import sys
import textwrap

import lightning as L
import pytest
import yaml
from conftest import CONFIGS, FAST_TRAINER_ARGS, read_csv_metrics, run_cli
from dataset_files import write_image_folder

from spinal_lightning.backbones import SmallCNN
from spinal_lightning.cli import SpinalCLI, main
from spinal_lightning.data import DigitsDataModule
from spinal_lightning.errors import ConfigMismatchError
from spinal_lightning.heads import SpinalHead
from spinal_lightning.module import SpinalClassifier

DATA_CONFIGS = sorted((CONFIGS / "data").glob("*.yaml"))
TRANSFER_DATA_CONFIGS = sorted((CONFIGS / "data" / "transfer").glob("*.yaml"))
EXPERIMENTS = sorted((CONFIGS / "experiments").glob("*.yaml"))


@pytest.fixture(autouse=True)
def bare_argv(monkeypatch):
    # LightningCLI warns when it gets args while sys.argv contains pytest's own arguments.
    monkeypatch.setattr(sys, "argv", ["spinal_lightning"])


class ParseOnlyCLI(SpinalCLI):
    """SpinalCLI that parses configs but builds nothing, so configs with downloads can be checked."""

    def instantiate_classes(self) -> None:
        pass


@pytest.fixture(scope="module")
def parser():
    """The CLI's parser, built once; each parse takes a fraction of a second."""
    sys_argv, sys.argv = sys.argv, ["spinal_lightning"]
    cli = ParseOnlyCLI(
        SpinalClassifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        run=False,
        args=["--config", str(CONFIGS / "digits_spinal.yaml")],
        auto_configure_optimizers=False,
    )
    sys.argv = sys_argv
    return cli.parser


def merge(parser, *configs) -> dict:
    """Return the config that ``--config A --config B ...`` gives, as plain dicts and lists."""
    namespace = parser.parse_args([item for config in configs for item in ("--config", str(config))])
    return yaml.safe_load(parser.dump(namespace, skip_validation=True))


def declared_data(config) -> dict:
    return yaml.safe_load(config.read_text())["data"]


@pytest.mark.parametrize("data_config", DATA_CONFIGS, ids=lambda path: path.stem)
def test_data_config_composes_with_vgg(parser, data_config):
    merged = merge(parser, CONFIGS / "vgg_spinal.yaml", data_config)
    declared = declared_data(data_config)

    assert merged["data"]["class_path"] == declared["class_path"]
    for key, value in declared["init_args"].items():
        assert merged["data"]["init_args"][key] == value


@pytest.mark.parametrize("data_config", TRANSFER_DATA_CONFIGS, ids=lambda path: path.stem)
def test_transfer_data_composes(parser, data_config):
    merged = merge(parser, CONFIGS / "experiments" / "transfer_wide_resnet101_2_spinal.yaml", data_config)

    assert merged["data"]["class_path"] == declared_data(data_config)["class_path"]
    assert merged["data"]["init_args"]["image_size"] == 224
    assert merged["model"]["backbone"]["init_args"] == {"name": "wide_resnet101_2", "weights": "DEFAULT"}


@pytest.mark.parametrize("experiment", EXPERIMENTS, ids=lambda path: path.stem)
def test_experiment_recipe(parser, experiment):
    merged = merge(parser, experiment, CONFIGS / "data" / "transfer" / "cifar100.yaml")

    assert merged["model"]["optimizer"]["class_path"] == "torch.optim.SGD"
    assert merged["model"]["optimizer"]["init_args"]["lr"] == 0.001
    assert merged["model"]["optimizer"]["init_args"]["momentum"] == 0.9
    assert merged["model"]["scheduler"]["init_args"]["step_size"] == 7
    assert merged["model"]["scheduler"]["init_args"]["gamma"] == 0.1
    assert merged["model"]["backbone"]["init_args"]["weights"] == "DEFAULT"
    assert merged["model"]["freeze_backbone"] is False


def test_digits_cli_fit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(CONFIGS / "digits_spinal.yaml"), *FAST_TRAINER_ARGS])

    metrics = read_csv_metrics(next(tmp_path.glob("runs/digits_spinal/version_*/metrics.csv")))
    assert 0.0 <= metrics["val/acc"] <= 1.0
    assert metrics["epoch"] == 0


def test_image_folder_cli_fit(tmp_path, monkeypatch):
    write_image_folder(
        tmp_path / "shapes", {"train": {"a": 6, "b": 6, "c": 6}, "val": {"a": 2, "b": 2, "c": 2}}
    )
    config = tmp_path / "folder.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            trainer:
              logger:
                class_path: lightning.pytorch.loggers.CSVLogger
                init_args: {{save_dir: runs, name: folder}}
            model:
              backbone: {{class_path: spinal_lightning.backbones.SmallCNN}}
              head:
                class_path: spinal_lightning.SpinalHead
                init_args: {{layer_width: 8}}
            data:
              class_path: spinal_lightning.data.ImageFolderDataModule
              init_args:
                data_dir: {tmp_path / "shapes"}
                batch_size: 4
                num_workers: 0
                image_size: 16
                test_size: 3
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    main(["fit", "--config", str(config), *FAST_TRAINER_ARGS])

    hparams = yaml.safe_load(next(tmp_path.glob("runs/folder/version_*/hparams.yaml")).read_text())
    assert hparams["num_classes"] == 3
    assert hparams["in_channels"] == 3


def test_cli_missing_folder_message(tmp_path, capsys):
    args = [
        "fit",
        "--config",
        str(CONFIGS / "digits_spinal.yaml"),
        "--config",
        str(CONFIGS / "data" / "transfer" / "bird225.yaml"),
        f"--data.init_args.data_dir={tmp_path / 'bird225'}",
    ]
    with pytest.raises(SystemExit) as caught:
        main(args)
    stderr = capsys.readouterr().err

    assert caught.value.code == 1
    assert str(tmp_path / "bird225" / "train") in stderr
    assert "<class>/<image>" in stderr
    assert "Traceback" not in stderr


def test_class_count_mismatch_fails_before_training(tmp_path):
    model = SpinalClassifier(
        backbone=SmallCNN,
        head=functools.partial(SpinalHead, layer_width=8),
        num_classes=5,
        in_channels=1,
    )
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )

    with pytest.raises(ConfigMismatchError, match="num_classes is 5, but the data set digits has 10 classes"):
        trainer.fit(model, datamodule=DigitsDataModule())
    assert trainer.global_step == 0


@pytest.mark.slow
def test_digits_reaches_95_percent(tmp_path):
    result = run_cli(["fit", "--config", str(CONFIGS / "digits_spinal.yaml")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = next(tmp_path.glob("runs/digits_spinal/version_0/checkpoints/*.ckpt"))

    result = run_cli(
        ["test", "--config", str(CONFIGS / "digits_spinal.yaml"), f"--ckpt_path={checkpoint}"], cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_csv_metrics(next(tmp_path.glob("runs/digits_spinal/version_1/metrics.csv")))
    assert metrics["test/acc"] >= 0.95
