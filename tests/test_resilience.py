"""Runs that survive: resume after SIGKILL, a clean checkpoint on SIGTERM, reproducible seeds."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import CONFIGS, FAST_TRAINER_ARGS, cli_env, run_cli

# Long enough that a kill lands mid-epoch: last.ckpt is refreshed every LAST_EVERY steps.
EPOCH_STEPS = 12
# The SIGTERM test needs an epoch that is still running when the signal arrives, also on a fast,
# idle machine, so its epoch is much longer than the time it waits before sending the signal.
SIGTERM_EPOCH_STEPS = 1000
LAST_EVERY = 3


def write_run_config(folder: Path, data_dir: Path, last_every: int = LAST_EVERY) -> Path:
    """Write a config overlay with a CSV logger in ``folder/runs`` and small, fast data settings."""
    config = folder / "run.yaml"
    config.write_text(
        f"""
trainer:
  log_every_n_steps: 1
  logger:
    class_path: lightning.pytorch.loggers.CSVLogger
    init_args:
      save_dir: runs
      name: run
  callbacks:
    - class_path: spinal_lightning.callbacks.checkpoint.RunCheckpoint
      init_args:
        monitor: val/acc
        mode: max
        save_last: true
        last_every_n_train_steps: {last_every}
    - class_path: spinal_lightning.callbacks.finite_loss.FiniteLossGuard
data:
  class_path: spinal_lightning.data.FashionMNISTDataModule
  init_args:
    data_dir: {data_dir}
    batch_size: 16
    val_size: 64
"""
    )
    return config


def fit_args(config: Path, *extra: str) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIGS / "vgg_spinal.yaml"),
        "--config",
        str(config),
        *FAST_TRAINER_ARGS,
        *extra,
    ]


def checkpoint_step(path: Path) -> int:
    """Load a checkpoint the safe way (weights only) and return its global step."""
    return torch.load(path, map_location="cpu", weights_only=True)["global_step"]


def train_loss_steps(metrics_csv: Path) -> list[int]:
    with open(metrics_csv, newline="") as handle:
        return [int(row["step"]) for row in csv.DictReader(handle) if row.get("train/loss_step")]


def wait_for(condition, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"fit ended early with status {process.returncode}: {process.stderr.read()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("timed out waiting for the first mid-epoch checkpoint")
        time.sleep(0.05)


def start_fit(tmp_path: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "spinal_lightning", *args],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigkill_mid_epoch_then_resume(tmp_path, fashion_mnist_dir):
    config = write_run_config(tmp_path, fashion_mnist_dir)
    args = fit_args(config, f"--trainer.limit_train_batches={EPOCH_STEPS}")
    folder = tmp_path / "runs" / "run" / "version_0"
    last = folder / "checkpoints" / "last.ckpt"

    process = start_fit(tmp_path, args)
    wait_for(last.exists, process, timeout=300)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL

    saved_step = checkpoint_step(last)
    assert saved_step % LAST_EVERY == 0
    assert 0 < saved_step < EPOCH_STEPS, "the kill must land in the middle of the epoch"

    resumed = run_cli([*args, "--ckpt_path", "last"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (
        f"Restoring states from the checkpoint path at {Path('runs/run/version_0/checkpoints/last.ckpt')}"
        in resumed.stderr + resumed.stdout
    )

    # Same run folder: the logger was pinned to version_0 rather than starting version_1.
    assert sorted(path.name for path in (tmp_path / "runs" / "run").iterdir()) == ["version_0"]

    # The resumed process continues at the saved step and stops at the end of the same epoch.
    assert checkpoint_step(last) == EPOCH_STEPS
    steps = train_loss_steps(folder / "metrics.csv")
    resumed_steps = steps[steps.index(saved_step) :] if saved_step in steps else []
    assert resumed_steps[:3] == [saved_step, saved_step + 1, saved_step + 2]
    assert resumed_steps[-1] == EPOCH_STEPS - 1

    # Every checkpoint on disk loads completely; no temporary file is left as a .ckpt.
    checkpoints = sorted((folder / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 2  # last.ckpt and the best one by val/acc
    for path in checkpoints:
        assert checkpoint_step(path) == EPOCH_STEPS
    assert (folder / "checkpoints" / "config.yaml").is_file()


def test_sigterm_writes_last_checkpoint(tmp_path, fashion_mnist_dir):
    # last_every 0: the only mid-epoch checkpoint can come from the SIGTERM handling.
    config = write_run_config(tmp_path, fashion_mnist_dir, last_every=0)
    args = fit_args(config, f"--trainer.limit_train_batches={SIGTERM_EPOCH_STEPS}")
    folder = tmp_path / "runs" / "run" / "version_0"
    metrics = folder / "metrics.csv"

    process = start_fit(tmp_path, args)
    # CSVLogger flushes rows every log_every_n_steps * 100 steps by default, so wait for the
    # checkpoint folder instead, which the callback creates at setup with config.yaml.
    wait_for((folder / "checkpoints" / "config.yaml").exists, process, timeout=300)
    time.sleep(2.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + signal.SIGTERM, stderr
    last = folder / "checkpoints" / "last.ckpt"
    assert "Interrupted by SIGTERM at global step" in stderr
    assert str(Path("runs/run/version_0/checkpoints/last.ckpt")) in stderr
    step = checkpoint_step(last)
    assert 0 <= step < SIGTERM_EPOCH_STEPS
    assert f"Interrupted by SIGTERM at global step {step} " in stderr
    assert not list((folder / "checkpoints").glob(".*.partial"))
    assert metrics.is_file(), "the logger must flush what it had on the way out"


def read_curves(metrics_csv: Path) -> dict[str, list[float]]:
    curves: dict[str, list[float]] = {}
    with open(metrics_csv, newline="") as handle:
        for row in csv.DictReader(handle):
            for key in ("train/loss_step", "val/loss", "val/acc"):
                if row.get(key):
                    curves.setdefault(key, []).append(float(row[key]))
    return curves


def seeded_run(tmp_path: Path, data_dir: Path, seed: int, name: str) -> dict[str, list[float]]:
    folder = tmp_path / name
    folder.mkdir()
    config = write_run_config(folder, data_dir, last_every=0)
    result = run_cli(
        fit_args(
            config,
            f"--seed_everything={seed}",
            "--trainer.deterministic=true",
            "--trainer.limit_train_batches=4",
            "--trainer.limit_val_batches=2",
        ),
        cwd=folder,
    )
    assert result.returncode == 0, result.stderr
    return read_curves(folder / "runs" / "run" / "version_0" / "metrics.csv")


def test_same_seed_gives_identical_curves(tmp_path, fashion_mnist_dir):
    first = seeded_run(tmp_path, fashion_mnist_dir, seed=7, name="a")
    second = seeded_run(tmp_path, fashion_mnist_dir, seed=7, name="b")
    other = seeded_run(tmp_path, fashion_mnist_dir, seed=8, name="c")

    assert len(first["train/loss_step"]) == 4
    assert first == second  # bit-identical floats, as written by the CSV logger
    assert other["train/loss_step"] != first["train/loss_step"]
    assert other["val/loss"] != first["val/loss"]


def validation_labels(seed: int | None, split_seed: int | None, data_dir: Path) -> torch.Tensor:
    from lightning.pytorch import seed_everything

    from spinal_lightning.data import FashionMNISTDataModule

    seed_everything(seed)
    datamodule = FashionMNISTDataModule(data_dir=str(data_dir), val_size=500, split_seed=split_seed)
    datamodule.setup("fit")
    return datamodule.val_set.tensors[1]


def test_seed_drives_split_unless_pinned(fashion_mnist_dir, monkeypatch):
    monkeypatch.delenv("PL_GLOBAL_SEED", raising=False)
    seed_1 = validation_labels(1, None, fashion_mnist_dir)
    seed_1_again = validation_labels(1, None, fashion_mnist_dir)
    seed_2 = validation_labels(2, None, fashion_mnist_dir)
    pinned_1 = validation_labels(1, 5, fashion_mnist_dir)
    pinned_2 = validation_labels(2, 5, fashion_mnist_dir)

    assert torch.equal(seed_1, seed_1_again)
    assert not torch.equal(seed_1, seed_2)
    assert torch.equal(pinned_1, pinned_2)


@pytest.mark.slow
def test_wandb_resume_keeps_run_id(tmp_path, fashion_mnist_dir):
    """`--ckpt_path last` with an offline WandbLogger continues the same W&B run and folder."""
    overlay = tmp_path / "wandb.yaml"
    overlay.write_text(
        f"""
trainer:
  logger:
    class_path: lightning.pytorch.loggers.WandbLogger
    init_args:
      save_dir: runs
      project: spinal
      offline: true
data:
  class_path: spinal_lightning.data.FashionMNISTDataModule
  init_args:
    data_dir: {fashion_mnist_dir}
    batch_size: 16
    val_size: 64
"""
    )
    args = fit_args(overlay, "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=1")

    first = run_cli(args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    resumed = run_cli([*args, "--trainer.max_epochs=2", "--ckpt_path", "last"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr

    run_ids = [path.name for path in (tmp_path / "runs" / "spinal").iterdir()]
    assert len(run_ids) == 1
    offline_runs = sorted((tmp_path / "runs" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 2
    assert all(path.name.endswith(f"-{run_ids[0]}") for path in offline_runs)
    assert checkpoint_step(tmp_path / "runs" / "spinal" / run_ids[0] / "checkpoints" / "last.ckpt") == 6
