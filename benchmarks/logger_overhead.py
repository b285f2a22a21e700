"""Time a short fit with the W&B logger (offline) against the same fit with the CSV logger.

Runs alternate (W&B, CSV, W&B, CSV, ...) so that both loggers see the same machine load, and the
script prints the ratio of each pair and the median ratio. Every run is a fresh CLI process in a
fresh folder, so the times include process start, imports and, for W&B, starting its service.

    python benchmarks/logger_overhead.py --pairs 3 --train-batches 20
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = REPO_ROOT / "configs" / "vgg_spinal.yaml"
CSV_LOGGER_ARGS = ["--trainer.logger=lightning.pytorch.loggers.CSVLogger", "--trainer.logger.name=vgg_spinal"]


def fit_args(train_batches: int, val_batches: int, batch_size: int) -> list[str]:
    return [
        "fit",
        "--config",
        str(CONFIG),
        "--trainer.max_epochs=1",
        f"--trainer.limit_train_batches={train_batches}",
        f"--trainer.limit_val_batches={val_batches}",
        "--trainer.num_sanity_val_steps=0",
        "--trainer.precision=32-true",
        "--trainer.enable_progress_bar=false",
        "--trainer.enable_model_summary=false",
        "--trainer.log_every_n_steps=1",
        f"--data.batch_size={batch_size}",
    ]


def run_fit(args: list[str], logger: str) -> float:
    """Run one fit in a fresh folder and return its wall-clock time in seconds."""
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true")
    env.pop("WANDB_API_KEY", None)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    extra = CSV_LOGGER_ARGS if logger == "csv" else []

    with tempfile.TemporaryDirectory(prefix=f"logger_overhead_{logger}_") as folder:
        start = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "spinal_lightning", *args, *extra],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
    if process.returncode != 0:
        raise RuntimeError(f"The {logger} fit failed:\n{process.stderr[-3000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=3, help="number of (W&B, CSV) pairs of fits")
    parser.add_argument("--train-batches", type=int, default=20, help="training batches per fit")
    parser.add_argument("--val-batches", type=int, default=5, help="validation batches per fit")
    parser.add_argument("--batch-size", type=int, default=64, help="images per batch")
    options = parser.parse_args()

    args = fit_args(options.train_batches, options.val_batches, options.batch_size)
    print(
        f"{options.pairs} pairs of 1-epoch fits, VGG-5 + Spinal head, {options.train_batches} train and "
        f"{options.val_batches} val batches of {options.batch_size}, fp32, CPU threads: {os.cpu_count()}"
    )
    print(f"{'pair':>4}  {'W&B offline s':>13}  {'CSV s':>7}  {'ratio':>6}")

    ratios, differences = [], []
    for pair in range(1, options.pairs + 1):
        wandb_seconds = run_fit(args, "wandb")
        csv_seconds = run_fit(args, "csv")
        ratios.append(wandb_seconds / csv_seconds)
        differences.append(wandb_seconds - csv_seconds)
        print(f"{pair:>4}  {wandb_seconds:>13.1f}  {csv_seconds:>7.1f}  {ratios[-1]:>6.2f}")

    print(
        f"median ratio W&B / CSV: {statistics.median(ratios):.2f}; "
        f"median extra time of W&B: {statistics.median(differences):+.1f} s per run"
    )


if __name__ == "__main__":
    main()
