"""Shared fixtures: the real Fashion-MNIST files, a CLI runner and settings that keep tests fast."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIGS = REPO_ROOT / "configs"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# Overrides that make a CLI fit take seconds on a 2-core CPU: a few batches per stage, no sanity
# check, and fp32 so the result does not depend on the CPU's bf16 support.
FAST_TRAINER_ARGS = [
    "--trainer.max_epochs=1",
    "--trainer.limit_train_batches=8",
    "--trainer.limit_val_batches=4",
    "--trainer.limit_test_batches=4",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.precision=32-true",
    "--trainer.enable_progress_bar=false",
    "--trainer.enable_model_summary=false",
]


@pytest.fixture(scope="session")
def fashion_mnist_dir() -> Path:
    """Folder of the real Fashion-MNIST IDX files (Debian package ``dataset-fashion-mnist``)."""
    if not (FASHION_MNIST_DIR / "train-images-idx3-ubyte.gz").is_file():
        pytest.fail(
            f"Real Fashion-MNIST not found in {FASHION_MNIST_DIR}. Install it with "
            "`apt-get install dataset-fashion-mnist` (the CI script does this)."
        )
    return FASHION_MNIST_DIR


def cli_env(**extra: str) -> dict[str, str]:
    """Environment for CLI subprocesses: offline W&B, no prompts, this checkout first on the path."""
    env = dict(os.environ)
    env.update(
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        WANDB_DISABLE_GIT="true",
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
        PYTHONUNBUFFERED="1",
    )
    env.pop("WANDB_API_KEY", None)
    env.update(extra)
    return env


def run_cli(args: list[str], cwd: Path, timeout: float = 600, **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m spinal_lightning ARGS`` in ``cwd`` and return the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "spinal_lightning", *args],
        cwd=cwd,
        env=cli_env(**env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_csv_metrics(path: Path) -> dict[str, float]:
    """Return the last non-empty value of every column of a CSVLogger ``metrics.csv``."""
    values: dict[str, float] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            for key, value in row.items():
                if value not in ("", None):
                    values[key] = float(value)
    return values


@pytest.fixture(autouse=True)
def finish_wandb_runs():
    """Finish a W&B run that an in-process test left open, so the next test starts its own.

    Lightning's WandbLogger leaves its run open after fit, and a later logger in the same process
    attaches to that run instead of starting one. wandb also exports WANDB_SERVICE, which CLI
    processes started by later tests would attach to.
    """
    yield
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
        wandb.teardown()
        os.environ.pop("WANDB_SERVICE", None)
