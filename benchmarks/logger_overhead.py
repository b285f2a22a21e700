"""Time a short fit with the W&B logger (offline) against the same fit with the CSV logger.

Runs alternate (W&B, CSV, W&B, CSV, ...) so that both loggers see the same machine load. The
script prints the ratio of each pair and the median ratio, for wall-clock time and for CPU time.
CPU time is user + system time of the CLI process and of the child processes it waited for, and
depends less than wall-clock time on what else runs on the machine.

NOTE: W&B's service process is a child of the CLI process, but whether its CPU time reaches these
counts depends on the CLI process reaping it, which this script does not check.

Every run is a fresh CLI process in a fresh folder, so the times include process start, imports
and, for W&B, starting and stopping its service.

    python benchmarks/logger_overhead.py --pairs 3 --train-batches 10 --val-batches 2
"""

from __future__ import annotations

import argparse
import os
import resource
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


def run_fit(args: list[str], logger: str) -> tuple[float, float]:
    """Run one fit in a fresh folder and return its wall-clock and CPU time in seconds."""
    env = dict(os.environ)
    env.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true")
    env.pop("WANDB_API_KEY", None)
    env["PYTHONPATH"] = str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    extra = CSV_LOGGER_ARGS if logger == "csv" else []

    with tempfile.TemporaryDirectory(prefix=f"logger_overhead_{logger}_") as folder:
        usage_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        process = subprocess.run(
            [sys.executable, "-m", "spinal_lightning", *args, *extra],
            cwd=folder,
            env=env,
            capture_output=True,
            text=True,
        )
        elapsed = time.perf_counter() - start
        usage_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise RuntimeError(f"The {logger} fit failed:\n{process.stderr[-3000:]}")
    cpu = (usage_after.ru_utime - usage_before.ru_utime) + (usage_after.ru_stime - usage_before.ru_stime)
    return elapsed, cpu


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
    header = f"{'pair':>4}  {'wall s W&B':>10}  {'CSV':>6}  {'ratio':>5}"
    print(f"{header}  {'CPU s W&B':>9}  {'CSV':>6}  {'ratio':>5}")

    wall_ratios, cpu_ratios, wall_extra, cpu_extra = [], [], [], []
    for pair in range(1, options.pairs + 1):
        wandb_wall, wandb_cpu = run_fit(args, "wandb")
        csv_wall, csv_cpu = run_fit(args, "csv")
        wall_ratios.append(wandb_wall / csv_wall)
        cpu_ratios.append(wandb_cpu / csv_cpu)
        wall_extra.append(wandb_wall - csv_wall)
        cpu_extra.append(wandb_cpu - csv_cpu)
        print(
            f"{pair:>4}  {wandb_wall:>10.1f}  {csv_wall:>6.1f}  {wall_ratios[-1]:>5.2f}  "
            f"{wandb_cpu:>9.1f}  {csv_cpu:>6.1f}  {cpu_ratios[-1]:>5.2f}"
        )

    median = statistics.median
    print(
        f"median ratio W&B / CSV: wall {median(wall_ratios):.2f}, CPU {median(cpu_ratios):.2f}; "
        f"median extra per run: wall {median(wall_extra):+.1f} s, CPU {median(cpu_extra):+.1f} s"
    )


if __name__ == "__main__":
    main()
