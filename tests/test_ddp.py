"""DDP on CPU processes: real two-process runs through the command line, checked against one process.

The multi-process tests start the CLI as users type it, with ``--trainer.strategy=ddp`` (Lightning
runs the command again in a child process), ``ddp_spawn`` (Lightning starts workers with
``torch.multiprocessing``) or under ``torchrun`` (slow test). The processes talk through gloo on
the loopback interface only. Each run fits a few batches on a slice of the real Fashion-MNIST
files and then tests its checkpoint under the same launcher. The reference is a plain PyTorch loop
in this process that evaluates the same checkpoint on the same validation and test sets.
"""

from __future__ import annotations

import gzip
import socket
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
import torch.nn.functional as F
import yaml
from conftest import CONFIGS, FAST_TRAINER_ARGS, cli_env, read_csv_metrics, run_cli
from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader

from spinal_lightning.cli import SpinalCLI, main
from spinal_lightning.data import FashionMNISTDataModule
from spinal_lightning.data.distributed import per_device_batch_size
from spinal_lightning.data.idx import read_idx
from spinal_lightning.module import SpinalClassifier

# Sizes chosen so that DDP over two processes has uneven evaluation shards: 129 validation samples
# in per-device batches of 16 give one process 65 samples (five batches, the last holding one)
# and the other 64 (four batches). A sampler that pads would count one sample twice.
TRAIN_SLICE = 600
TEST_SLICE = 131
VAL_SIZE = 129
BATCH_SIZE = 16

# Every evaluation batch is used, so the DDP metrics cover the whole validation and test sets.
DDP_TRAINER_ARGS = [
    arg for arg in FAST_TRAINER_ARGS if not arg.startswith(("--trainer.limit_val", "--trainer.limit_test"))
]


def write_idx(path: Path, tensor: torch.Tensor) -> None:
    """Write a uint8 tensor as a gzip-compressed IDX file, the format of the MNIST family."""
    header = bytes([0, 0, 0x08, tensor.ndim]) + b"".join(size.to_bytes(4, "big") for size in tensor.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + tensor.numpy().tobytes())


@pytest.fixture(scope="module")
def fashion_mnist_slice(fashion_mnist_dir, tmp_path_factory) -> Path:
    """Folder with the first samples of the real Fashion-MNIST training and test files."""
    folder = tmp_path_factory.mktemp("fashion_mnist_slice")
    for images, labels, count in (
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", TRAIN_SLICE),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", TEST_SLICE),
    ):
        for stem in (images, labels):
            write_idx(folder / f"{stem}.gz", read_idx(fashion_mnist_dir / f"{stem}.gz")[:count])
    return folder


def loopback_env() -> dict[str, str]:
    """Environment that keeps the DDP rendezvous and gloo's sockets on 127.0.0.1."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "GLOO_SOCKET_IFNAME": "lo"}


def write_logger_config(path: Path, save_dir: Path) -> Path:
    """Write a trainer config with an offline W&B logger and a CSV logger under ``save_dir``."""
    path.write_text(
        f"""trainer:
  logger:
    - class_path: lightning.pytorch.loggers.WandbLogger
      init_args:
        save_dir: {save_dir}
        project: ddp-check
        offline: true
    - class_path: lightning.pytorch.loggers.CSVLogger
      init_args:
        save_dir: {save_dir}
        name: csv
"""
    )
    return path


def run_args(data_dir: Path, logger_config: Path) -> list[str]:
    """Arguments shared by the fit and test commands, after the subcommand."""
    return [
        "--config", str(CONFIGS / "vgg_spinal.yaml"),
        "--config", str(logger_config),
        f"--data.data_dir={data_dir}",
        f"--data.val_size={VAL_SIZE}",
        f"--data.batch_size={BATCH_SIZE}",
        "--model.head.init_args.layer_width=16",
        "--model.optimizer.init_args.lr=0.001",
        *DDP_TRAINER_ARGS,
    ]  # fmt: skip


def run_two_processes(launcher: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    """Run ``python -m spinal_lightning ARGS`` as two DDP processes started by ``launcher``.

    ``ddp`` and ``ddp_spawn`` are typed as Lightning users type them; ``torchrun`` starts both
    processes itself, as on a cluster node, and Lightning joins them.
    """
    env = loopback_env()
    if launcher in ("ddp", "ddp_spawn"):
        strategy_args = [f"--trainer.strategy={launcher}", "--trainer.devices=2", "--trainer.accelerator=cpu"]
        return run_cli([*args, *strategy_args], cwd=cwd, **env)

    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes=1", "--nproc-per-node=2",
        f"--master-addr={env['MASTER_ADDR']}", f"--master-port={env['MASTER_PORT']}",
        "-m", "spinal_lightning", *args,
        "--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu",
    ]  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=cli_env(**env), capture_output=True, text=True, timeout=600)


def assert_finished(result) -> None:
    assert result.returncode == 0, (
        f"exit code {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    )


def wandb_runs(save_dir: Path) -> list[Path]:
    return sorted((save_dir / "wandb").glob("offline-run-*"))


def evaluate_single_process(config_file: Path, checkpoint: Path) -> dict[str, dict[str, float]]:
    """Evaluate ``checkpoint`` on the run's validation and test sets in this process, in plain PyTorch.

    The model and datamodule are rebuilt from the config that the DDP run saved, so the split and
    the preprocessing are the run's own.
    """
    # The saved config is the fit subcommand's, whose options such as ckpt_path do not exist
    # without a subcommand.
    saved = yaml.safe_load(config_file.read_text())
    config = {key: saved[key] for key in ("seed_everything", "trainer", "model", "data")}
    config["trainer"].update(logger=False, strategy="auto", devices=1)
    cli = SpinalCLI(
        SpinalClassifier,
        L.LightningDataModule,
        subclass_mode_data=True,
        run=False,
        args=config,
        auto_configure_optimizers=False,
    )
    model, datamodule = cli.model, cli.datamodule
    model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"])
    model.eval()
    datamodule.setup("fit")
    datamodule.setup("test")

    results = {}
    for stage, dataset in (("val", datamodule.val_set), ("test", datamodule.test_set)):
        correct, loss_sum, count = 0, 0.0, 0
        with torch.no_grad():
            for batch in DataLoader(dataset, batch_size=256):
                # Without a trainer attached, the datamodule only converts and normalises.
                images, labels = datamodule.on_after_batch_transfer(batch, 0)
                logits = model(images)
                correct += int((logits.argmax(dim=1) == labels).sum())
                loss_sum += float(F.cross_entropy(logits, labels, reduction="sum"))
                count += len(labels)
        results[stage] = {
            "count": count,
            "correct": correct,
            "acc": correct / count,
            "loss": loss_sum / count,
        }
    return results


@pytest.mark.parametrize("launcher", ["ddp", "ddp_spawn", pytest.param("torchrun", marks=pytest.mark.slow)])
def test_ddp_fit_matches_single_process(launcher, fashion_mnist_slice, tmp_path):
    fit_dir, test_dir = tmp_path / "fit", tmp_path / "test"
    fit_logger = write_logger_config(tmp_path / "fit_loggers.yaml", fit_dir)
    fit_args = ["fit", *run_args(fashion_mnist_slice, fit_logger), "--trainer.enable_model_summary=true"]
    fit = run_two_processes(launcher, fit_args, tmp_path)
    assert_finished(fit)

    # Rank 0 alone logs, saves the config and checkpoints: one of each.
    assert len(wandb_runs(fit_dir)) == 1
    checkpoint_dirs = sorted(fit_dir.rglob("checkpoints"))
    assert len(checkpoint_dirs) == 1
    # The run folder contains the saved config, and the checkpoint callback copies it beside the
    # checkpoints; a second process would add more copies.
    configs = sorted(path for path in fit_dir.rglob("config.yaml") if "wandb" not in path.parts)
    assert configs == [checkpoint_dirs[0] / "config.yaml", checkpoint_dirs[0].parent / "config.yaml"]
    assert (fit.stdout + fit.stderr).count("Total params") == 1
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in fit.stdout + fit.stderr  # a second process did run

    checkpoint = checkpoint_dirs[0] / "last.ckpt"
    test_logger = write_logger_config(tmp_path / "test_loggers.yaml", test_dir)
    test_args = ["test", *run_args(fashion_mnist_slice, test_logger), f"--ckpt_path={checkpoint}"]
    test = run_two_processes(launcher, test_args, tmp_path)
    assert_finished(test)
    assert len(wandb_runs(test_dir)) == 1

    reference = evaluate_single_process(next(fit_dir.rglob("config.yaml")), checkpoint)
    assert reference["val"]["count"] == VAL_SIZE
    assert reference["test"]["count"] == TEST_SLICE
    # An accuracy of 0 or 1 is the same with or without a repeated sample, so it must lie between.
    assert 0 < reference["val"]["correct"] < VAL_SIZE

    fit_metrics = read_csv_metrics(next(fit_dir.rglob("metrics.csv")))
    test_metrics = read_csv_metrics(next(test_dir.rglob("metrics.csv")))
    assert fit_metrics["val/acc"] == pytest.approx(reference["val"]["acc"], abs=1e-6)
    assert test_metrics["test/acc"] == pytest.approx(reference["test"]["acc"], abs=1e-6)
    assert fit_metrics["val/loss"] == pytest.approx(reference["val"]["loss"], rel=1e-4)
    assert test_metrics["test/loss"] == pytest.approx(reference["test"]["loss"], rel=1e-4)


def distributed_trainer(num_replicas: int, rank: int) -> SimpleNamespace:
    """Stand-in for the two trainer properties the datamodule reads under DDP."""
    return SimpleNamespace(
        world_size=num_replicas, distributed_sampler_kwargs={"num_replicas": num_replicas, "rank": rank}
    )


def test_evaluation_shards_cover_each_sample_once(fashion_mnist_slice):
    seen = []
    for rank in range(2):
        datamodule = FashionMNISTDataModule(
            data_dir=str(fashion_mnist_slice), val_size=VAL_SIZE, batch_size=BATCH_SIZE
        )
        datamodule.trainer = distributed_trainer(2, rank)
        datamodule.setup("fit")

        loader = datamodule.val_dataloader()
        assert isinstance(loader.sampler, UnrepeatedDistributedSampler)
        seen += list(loader.sampler)

    assert len(seen) == VAL_SIZE
    assert sorted(seen) == list(range(VAL_SIZE))


def test_training_loader_left_to_lightning(fashion_mnist_slice):
    datamodule = FashionMNISTDataModule(data_dir=str(fashion_mnist_slice), val_size=VAL_SIZE)
    datamodule.trainer = distributed_trainer(2, 0)
    datamodule.setup("fit")

    # Lightning injects its own shuffling DistributedSampler into the training loader.
    assert isinstance(datamodule.train_dataloader().sampler, torch.utils.data.RandomSampler)


def test_evaluation_set_smaller_than_world_size(fashion_mnist_slice):
    datamodule = FashionMNISTDataModule(data_dir=str(fashion_mnist_slice), val_size=3)
    datamodule.trainer = distributed_trainer(4, 0)
    datamodule.setup("fit")

    with pytest.raises(ValueError, match="has 3 samples, fewer than the 4 processes"):
        datamodule.val_dataloader()


def test_global_batch_size_divided_by_world_size(fashion_mnist_slice):
    datamodule = FashionMNISTDataModule(
        data_dir=str(fashion_mnist_slice), val_size=VAL_SIZE, global_batch_size=64
    )
    datamodule.trainer = distributed_trainer(4, 0)
    datamodule.setup("fit")

    assert datamodule.device_batch_size() == 16
    assert datamodule.train_dataloader().batch_size == 16


def test_global_batch_size_without_trainer(fashion_mnist_slice):
    datamodule = FashionMNISTDataModule(
        data_dir=str(fashion_mnist_slice), val_size=VAL_SIZE, global_batch_size=64
    )
    datamodule.setup("fit")

    assert datamodule.device_batch_size() == 64
    assert datamodule.train_dataloader().batch_size == 64


def test_global_batch_size_not_divisible():
    with pytest.raises(ValueError) as error:
        per_device_batch_size(100, 3)

    message = str(error.value)
    assert "global_batch_size=100" in message
    assert "world size 3" in message
    assert "99 or 102" in message
    assert "data.batch_size" in message


def test_global_batch_size_rejects_zero():
    with pytest.raises(ValueError, match="global_batch_size must be a positive integer, got 0"):
        FashionMNISTDataModule(global_batch_size=0)


def print_config(args: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--print_config"])
    assert exit_info.value.code in (0, None)
    return capsys.readouterr().out


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        ("single_device", {"strategy: auto", "devices: 1", "sync_batchnorm: false"}),
        ("ddp", {"strategy: ddp", "devices: -1", "accelerator: gpu", "sync_batchnorm: true"}),
        ("ddp_cpu", {"strategy: ddp", "devices: 2", "accelerator: cpu", "sync_batchnorm: false"}),
        ("multi_node", {"strategy: ddp", "num_nodes: 2", "devices: 4", "sync_batchnorm: true"}),
    ],
)
def test_trainer_preset_composes_with_config(preset, expected, capsys):
    printed = print_config(
        [
            "--config",
            str(CONFIGS / "vgg_spinal.yaml"),
            "--config",
            str(CONFIGS / "trainer" / f"{preset}.yaml"),
        ],
        capsys,
    )
    lines = {line.strip() for line in printed.splitlines()}

    assert expected <= lines
    # The preset changes the trainer's devices only; the recipe of the base config stays.
    assert "max_epochs: 200" in lines
    assert "- class_path: spinal_lightning.callbacks.checkpoint.RunCheckpoint" in lines
    assert "class_path: spinal_lightning.SpinalHead" in lines


def test_sync_batchnorm_on_cpu_is_rejected(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "fit",
                "--config", str(CONFIGS / "vgg_spinal.yaml"),
                "--config", str(CONFIGS / "trainer" / "ddp.yaml"),
                "--trainer.accelerator=cpu",
                "--trainer.devices=2",
            ]
        )  # fmt: skip

    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert "trainer.sync_batchnorm=true is not supported on the CPU accelerator" in message
    assert "--trainer.sync_batchnorm=false" in message
    assert "configs/trainer/ddp_cpu.yaml" in message
