"""Train full epochs with the default config and with the fp32 + PIL baseline, then test both.

The default VGG-5 Fashion-MNIST config (``precision: auto``, channels_last, batched augmentation
on the device) is compared with the same model and recipe run the usual PyTorch way: float32,
contiguous layout, per-sample torchvision transforms on PIL images. Both start from the same
seed; validation and the learning-rate scheduler are off, so the epochs do the same training work.
It prints the train-epoch seconds, images/s, test accuracy and the speed-up.

Full epochs run one variant after the other, so on a shared machine the load can differ between
them. ``--train-batches N --repeats R`` instead alternates the variants R times over the first N
batches of an epoch, without testing, and prints the images/s ratio measured side by side.

    python benchmarks/epoch_time.py --epochs 1
    python benchmarks/epoch_time.py --train-batches 60 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

# `python benchmarks/<script>.py` puts only benchmarks/ on sys.path; the imports below need the root.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.lightning_overhead import REPO_ROOT, run  # noqa: E402

# The settings compared, also read by the accuracy comparison in docs/speed.md: the default
# config, the fp32 + PIL baseline, and the two ablations that change only precision or data path.
VARIANTS = {
    name: ["--config", str(REPO_ROOT / "benchmarks" / "variants" / f"{name.replace('-', '_')}.yaml")]
    for name in ("default", "fp32-pil", "fp32-tensor", "bf16-pil")
}


def run_variant(
    name: str, config: str, epochs: int, workdir: Path, train_batches: int | None = None, extra: tuple = ()
) -> dict:
    """Fit for ``epochs`` epochs, test the final weights and return the timer's record.

    With ``train_batches``, each epoch stops after that many batches and the test is skipped.
    """
    workdir.mkdir(parents=True)
    timing, checkpoints = workdir / "timing.json", workdir / "checkpoints"
    overlay = workdir / "overlay.yaml"
    overlay.write_text(
        "trainer:\n"
        "  callbacks:\n"
        "    - class_path: benchmarks.timing.ThroughputTimer\n"
        f"      init_args: {{output: {timing}}}\n"
        "    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        f"      init_args: {{dirpath: {checkpoints}, filename: final}}\n"
    )
    common = [
        "--config", config, "--config", str(overlay),
        f"--trainer.default_root_dir={workdir}",
        f"--trainer.logger.init_args.save_dir={workdir}",
        "--trainer.enable_progress_bar=false",
        *VARIANTS[name],
        *extra,
    ]  # fmt: skip
    limit = [f"--trainer.limit_train_batches={train_batches}"] if train_batches else []
    run([sys.executable, "-m", "spinal_lightning", "fit", *common, f"--trainer.max_epochs={epochs}",
         "--trainer.limit_val_batches=0", "--model.scheduler=null", *limit])  # fmt: skip
    record = json.loads(timing.read_text())
    if train_batches:
        return record
    run([sys.executable, "-m", "spinal_lightning", "test", *common, f"--ckpt_path={checkpoints / 'final.ckpt'}"])
    record.update(json.loads(timing.read_text()))
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--head", choices=("spinal", "fc"), default="spinal")
    parser.add_argument("--variants", nargs="+", choices=sorted(VARIANTS), default=["default", "fp32-pil"])
    parser.add_argument("--train-batches", type=int, help="time only this many batches per run, alternating")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per variant, with --train-batches")
    parser.add_argument("cli_args", nargs="*", help="extra CLI arguments for every variant, after --")
    args = parser.parse_args()
    config = str(REPO_ROOT / "configs" / f"vgg_{args.head}.yaml")
    if args.train_batches:
        compare_side_by_side(args, config)
        return

    records = {}
    with tempfile.TemporaryDirectory(prefix="spinal_epoch_") as folder:
        for name in args.variants:
            record = run_variant(name, config, args.epochs, Path(folder) / name, extra=tuple(args.cli_args))
            records[name] = record
            print(
                f"{name:11s} {record['precision']:10s} train epoch {record['train_epoch_seconds']:7.1f} s, "
                f"{record.get('images_per_second', float('nan')):6.1f} images/s, test/acc {100 * record['test/acc']:.2f} %",
                flush=True,
            )

    if {"default", "fp32-pil"} <= records.keys():
        fast, slow = records["default"], records["fp32-pil"]
        print(f"speed-up of the default config: {slow['train_epoch_seconds'] / fast['train_epoch_seconds']:.2f}x")
        print(f"test accuracy difference: {100 * (fast['test/acc'] - slow['test/acc']):+.2f} points")


def compare_side_by_side(args, config: str) -> None:
    """Alternate the variants over the first ``train_batches`` batches and print the images/s ratio."""
    rates: dict[str, list[float]] = {name: [] for name in args.variants}
    with tempfile.TemporaryDirectory(prefix="spinal_epoch_") as folder:
        for repeat in range(args.repeats):
            # Alternate the order, so a slow phase of a shared machine does not always hit one side.
            order = args.variants if repeat % 2 == 0 else list(reversed(args.variants))
            for name in order:
                workdir = Path(folder) / f"{name}-{repeat}"
                record = run_variant(name, config, 1, workdir, args.train_batches, tuple(args.cli_args))
                rates[name].append(record["images_per_second"])
                print(
                    f"repeat {repeat + 1} {name:11s} {record['precision']:10s} {record['images_per_second']:7.1f} images/s",
                    flush=True,
                )

    if "fp32-pil" in rates:
        baseline = statistics.median(rates["fp32-pil"])
        for name in args.variants:
            median = statistics.median(rates[name])
            print(f"median images/s: {name:11s} {median:7.1f}, {median / baseline:.2f}x the fp32-pil baseline")


if __name__ == "__main__":
    main()
