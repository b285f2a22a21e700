"""Time ``fit`` through the CLI against the hand-written loop, alternating, in one run.

Each repeat runs both in fresh processes, one after the other and in alternating order, on the
same config, batch size, precision and data path, and times the same window (batch ``warmup`` to
the last training batch, validation off). It prints images/s of every run, the medians and the
ratio CLI / plain loop.

    python benchmarks/lightning_overhead.py --repeats 3 --batches 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def run_cli(config: str, batches: int, warmup: int, precision: str, extra: list[str], workdir: Path) -> dict:
    """Run ``fit`` with only the timing callback and return what it wrote."""
    output = workdir / "cli.json"
    overlay = workdir / "timing.yaml"
    overlay.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: benchmarks.timing.ThroughputTimer\n"
        f"      init_args: {{output: {output}, warmup: {warmup}}}\n"
    )
    command = [
        sys.executable, "-m", "spinal_lightning", "fit",
        "--config", config, "--config", str(overlay),
        "--trainer.max_epochs=1",
        f"--trainer.limit_train_batches={batches}",
        "--trainer.limit_val_batches=0",
        "--trainer.enable_checkpointing=false",
        # The plateau scheduler needs validation metrics; the plain loop has no scheduler either.
        "--model.scheduler=null",
        f"--trainer.precision={precision}",
        f"--trainer.default_root_dir={workdir}",
        f"--trainer.logger.init_args.save_dir={workdir}",
        *extra,
    ]  # fmt: skip
    run(command)
    return json.loads(output.read_text())


def run_plain(head: str, batches: int, warmup: int, precision: str) -> dict:
    command = [
        sys.executable, str(REPO_ROOT / "benchmarks" / "plain_loop.py"),
        f"--batches={batches}", f"--warmup={warmup}", f"--head={head}", f"--precision={precision}",
    ]  # fmt: skip
    return json.loads(run(command).strip().splitlines()[-1])


def run(command: list[str]) -> str:
    env = dict(os.environ, PYTHONPATH=f"{REPO_ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    finished = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True)
    if finished.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed with exit code {finished.returncode}:\n{finished.stderr[-3000:]}")
    return finished.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="pairs of runs")
    parser.add_argument("--batches", type=int, default=60, help="training batches per run")
    parser.add_argument("--warmup", type=int, default=5, help="first batches left out of the timing")
    parser.add_argument("--head", choices=("spinal", "fc"), default="spinal")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("cli_args", nargs="*", help="extra CLI arguments, after --")
    args = parser.parse_args()
    config = str(REPO_ROOT / "configs" / f"vgg_{args.head}.yaml")

    rates: dict[str, list[float]] = {"cli": [], "plain": []}
    with tempfile.TemporaryDirectory(prefix="spinal_bench_") as folder:
        for repeat in range(args.repeats):
            # Alternate the order, so a slow phase of a shared machine does not always hit one side.
            order = ("cli", "plain") if repeat % 2 == 0 else ("plain", "cli")
            for kind in order:
                if kind == "cli":
                    result = run_cli(config, args.batches, args.warmup, args.precision, args.cli_args, Path(folder))
                else:
                    result = run_plain(args.head, args.batches, args.warmup, args.precision)
                rates[kind].append(result["images_per_second"])
                print(
                    f"repeat {repeat + 1} {kind:5s} {result['images_per_second']:8.1f} images/s ({result['precision']})",
                    flush=True,
                )

    cli, plain = statistics.median(rates["cli"]), statistics.median(rates["plain"])
    pair_ratios = [c / p for c, p in zip(rates["cli"], rates["plain"], strict=True)]
    print(f"median: cli {cli:.1f} images/s, plain loop {plain:.1f} images/s")
    print(f"ratio cli / plain loop: {cli / plain:.3f} (per pair: {', '.join(f'{r:.3f}' for r in pair_ratios)})")


if __name__ == "__main__":
    main()
