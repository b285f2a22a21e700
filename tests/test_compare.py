"""The compare command: same data stream for every head, tables, plot, and failed runs."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import CONFIGS, FAST_TRAINER_ARGS, cli_env, run_cli
from lightning import seed_everything

from spinal_lightning.compare.command import ComparisonError, child_environment, compare
from spinal_lightning.compare.report import (
    check_batch_order,
    check_settings,
    load_results,
    summarize,
    summary_markdown,
    write_report,
)
from spinal_lightning.compare.single_run import ComparisonRunCLI
from spinal_lightning.data.augment import BatchAugment
from spinal_lightning.data.base import InMemoryImageDataModule
from spinal_lightning.module import SpinalClassifier

# Even fewer batches than FAST_TRAINER_ARGS: the end-to-end test trains two heads.
TINY_TRAINER_ARGS = [
    *FAST_TRAINER_ARGS,
    "--trainer.limit_train_batches=3",
    "--trainer.limit_val_batches=1",
    "--trainer.limit_test_batches=2",
]

# A head config that the head rejects when it is built, as a mistyped config would be.
BROKEN_HEAD_CONFIG = """\
model:
  head:
    class_path: spinal_lightning.SpinalHead
    init_args:
      layer_width: 0
"""


def read_rows(path: Path) -> dict[str, dict[str, str]]:
    with open(path, newline="") as handle:
        return {row["label"] + "/" + row.get("seed", ""): row for row in csv.DictReader(handle)}


class RandomImages(InMemoryImageDataModule):
    """64 random 8 x 8 grey images of 4 classes, enough to compare batch orders."""

    name = "random images"
    num_classes = 4
    in_channels = 1
    image_size = (8, 8)
    mean = (0.5,)
    std = (0.5,)

    def load_images(self, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=generator)
        return images, torch.arange(64) % 4

    def default_augmentation(self) -> BatchAugment:
        return BatchAugment(rotation_degrees=10.0, crop_scale=(0.9, 1.0))


def draw_data_stream(seed: int, global_draws: int) -> tuple[list[int], torch.Tensor]:
    """Return the first batch's labels and its augmentation after ``global_draws`` unrelated draws."""
    seed_everything(seed, verbose=False)
    datamodule = RandomImages(batch_size=16, val_size=8)
    datamodule.setup("fit")

    # Stands in for a model whose initialisation and dropout draw from torch's global generator.
    torch.rand(global_draws)

    images, labels = next(iter(datamodule.train_dataloader()))
    augmented = datamodule.augmentation(images.float() / 255, generator=datamodule.augment_generator(images.device))
    return labels.tolist(), augmented


def test_data_stream_ignores_global_draws():
    labels_a, augmented_a = draw_data_stream(seed=3, global_draws=10)
    labels_b, augmented_b = draw_data_stream(seed=3, global_draws=12345)
    assert labels_a == labels_b
    assert torch.equal(augmented_a, augmented_b)


def test_data_stream_follows_seed():
    labels_a, augmented_a = draw_data_stream(seed=3, global_draws=10)
    labels_b, augmented_b = draw_data_stream(seed=4, global_draws=10)
    assert labels_a != labels_b
    assert not torch.equal(augmented_a, augmented_b)


def test_datamodule_seed_overrides_global_seed():
    seed_everything(0, verbose=False)
    assert RandomImages(seed=7).resolve_seed() == 7
    assert RandomImages().resolve_seed() == 0


def test_compare_heads_on_fashion_mnist(tmp_path, fashion_mnist_dir):
    (tmp_path / "broken_head.yaml").write_text(BROKEN_HEAD_CONFIG)
    result = run_cli(
        [
            "compare",
            "--config",
            str(CONFIGS / "vgg_spinal.yaml"),
            "--heads",
            str(CONFIGS / "vgg_spinal.yaml"),
            "broken_head.yaml",
            str(CONFIGS / "vgg_fc.yaml"),
            "--labels",
            "spinal",
            "broken",
            "fc",
            "--output",
            "comparison",
            *TINY_TRAINER_ARGS,
        ],
        cwd=tmp_path,
    )
    output = tmp_path / "comparison"

    # The failed run sets the exit code but keeps the other runs and the report.
    assert result.returncode == 1, result.stderr
    assert "1 of 3 runs failed" in result.stdout

    runs = read_rows(output / "runs.csv")
    assert runs["spinal/0"]["status"] == "ok"
    assert runs["fc/0"]["status"] == "ok"
    assert runs["broken/0"]["status"] == "failed"
    assert "layer_width must be a positive integer, got 0" in runs["broken/0"]["error"]

    summary = read_rows(output / "summary.csv")
    assert summary["spinal/"]["head_class"] == "SpinalHead"
    assert int(summary["spinal/"]["head_params"]) == 121_354
    assert int(summary["spinal/"]["total_params"]) == 3_629_770
    assert int(summary["fc/"]["head_params"]) == 137_738
    assert int(summary["fc/"]["total_params"]) == 3_646_154
    assert float(summary["spinal/"]["head_params_ratio"]) == pytest.approx(121_354 / 137_738)
    assert int(summary["spinal/"]["train_samples"]) == 3 * 100
    assert 0 <= float(summary["spinal/"]["test_acc_mean"]) <= 1
    assert summary["broken/"]["runs_ok"] == "0"
    assert summary["broken/"]["test_acc_mean"] == ""

    # Same seed, same split, same batches in the same order, same augmentation for both heads.
    spinal = json.loads((output / "runs/spinal/seed0/result.json").read_text())
    fc = json.loads((output / "runs/fc/seed0/result.json").read_text())
    assert len(spinal["first_batch_labels"]) == 3
    assert spinal["first_batch_labels"] == fc["first_batch_labels"]
    assert spinal["first_batch_pixel_sums"] == pytest.approx(fc["first_batch_pixel_sums"], rel=1e-9)
    assert spinal["settings"] == fc["settings"]

    report = (output / "report.md").read_text()
    assert "| broken | 0 | FAILED |" in report
    assert "identical labels and augmented pixels in the first 3 training batches for all 2 heads" in report
    assert (output / "accuracy_vs_head_params.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The configs log to W&B offline, so each run leaves its W&B log in its own folder.
    assert list((output / "runs/spinal/seed0").rglob("run-*.wandb"))


def fake_result(label: str, seed: int, test_acc: float, head_params: int, **extra) -> dict:
    return {
        "label": label,
        "seed": seed,
        "status": "ok",
        "head_class": "SpinalHead" if label == "spinal" else "FCHead",
        "test_acc": test_acc,
        "head_params": head_params,
        "backbone_params": 1000,
        "total_params": 1000 + head_params,
        "epochs": 1,
        "steps": 10,
        "train_samples": 1000,
        "train_seconds": 20.0,
        "fit_seconds": 25.0,
        "images_per_second": 50.0,
        "first_batch_labels": [[seed, 1, 2]],
        "first_batch_pixel_sums": [float(seed)],
        "settings": {"data.init_args.batch_size": "100"},
        **extra,
    }


def write_results(runs_dir: Path, results: list[dict]) -> None:
    for result in results:
        run_dir = runs_dir / result["label"] / f"seed{result['seed']}"
        run_dir.mkdir(parents=True)
        (run_dir / "result.json").write_text(json.dumps(result))


def test_summary_values_over_seeds():
    results = [
        fake_result("spinal", 0, 0.92, 120),
        fake_result("spinal", 1, 0.94, 120),
        fake_result("fc", 0, 0.90, 150),
        fake_result("fc", 1, 0.90, 150),
    ]
    spinal, fc = summarize(results, ["spinal", "fc"], baseline="fc")

    assert spinal["test_acc_mean"] == pytest.approx(0.93)
    assert spinal["test_acc_std"] == pytest.approx(0.0141421, rel=1e-5)
    assert spinal["acc_difference_mean"] == pytest.approx(0.03)
    assert spinal["error_rate_reduction"] == pytest.approx((0.10 - 0.07) / 0.10)
    assert spinal["head_params_ratio"] == pytest.approx(0.8)
    assert spinal["test_acc_per_seed"] == "0:0.9200;1:0.9400"
    assert fc["test_acc_std"] == pytest.approx(0.0)
    assert fc["acc_difference_mean"] is None


def test_missing_result_counts_as_failed(tmp_path):
    write_results(tmp_path, [fake_result("fc", 0, 0.9, 150)])
    crashed = tmp_path / "spinal" / "seed0"
    crashed.mkdir(parents=True)
    (crashed / "output.log").write_text("training...\nKilled\n")

    spinal, fc = load_results(tmp_path, [(0, "spinal"), (0, "fc")])
    assert spinal["status"] == "failed"
    assert spinal["error"] == "no result.json: Killed"
    assert fc["status"] == "ok"


def test_report_with_all_runs_of_a_head_failed(tmp_path):
    write_results(tmp_path / "runs", [fake_result("fc", 0, 0.9, 150)])
    failed = {"label": "spinal", "seed": 0, "status": "failed", "error": "RuntimeError: out of memory"}
    context = {
        "title": "synthetic",
        "command": "python -m spinal_lightning compare --heads a.yaml b.yaml",
        "machine": {"cpu": "test CPU", "cpu_cores": "2", "gpu": "none", "software": "test", "date": "today"},
        "labels": ["spinal", "fc"],
        "head_configs": {"spinal": "a.yaml", "fc": "b.yaml"},
        "base_configs": [],
        "seeds": [0],
        "baseline": "fc",
    }
    write_report(tmp_path, [failed, *load_results(tmp_path / "runs", [(0, "fc")])], context)

    report = (tmp_path / "report.md").read_text()
    assert "| spinal | n/a | 0 of 1 | FAILED | n/a | n/a |" in report
    assert "| spinal | 0 | FAILED | n/a | n/a | n/a | RuntimeError: out of memory |" in report
    assert "1 of 2 runs FAILED" in report
    assert (tmp_path / "accuracy_vs_head_params.png").is_file()
    assert read_rows(tmp_path / "summary.csv")["fc/"]["test_acc_mean"] == "0.9"


def test_batch_order_check_flags_difference():
    same = [fake_result("spinal", 0, 0.9, 1), fake_result("fc", 0, 0.9, 2)]
    shifted = fake_result("fc", 0, 0.9, 2, first_batch_labels=[[2, 1, 0]])

    assert "identical" in check_batch_order(same)[0]
    assert "DIFFERENT first 1 training batches for fc than for spinal" in check_batch_order([same[0], shifted])[0]


def test_settings_check_lists_differing_keys():
    a = fake_result("spinal", 0, 0.9, 1)
    b = fake_result("fc", 0, 0.9, 2, settings={"data.init_args.batch_size": "50"})
    assert check_settings([a, b]) == ["data.init_args.batch_size"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--heads", "missing.yaml"], "Config file 'missing.yaml' not found"),
        (["--heads", "{head}", "--labels", "a", "b"], "--labels has 2 names for 1 --heads configs"),
        (["--heads", "{head}", "{head}"], "are not unique"),
        (["--heads", "{head}", "--seeds", "1", "1"], "repeats a seed"),
        (["--heads", "{head}", "--baseline", "other"], "--baseline 'other' is not one of"),
        (["--heads", "{head}", "--seed_everything=3"], "Unknown argument '--seed_everything=3'"),
        (["--heads", "{head}", "--seed", "3"], "Unknown argument '--seed'"),
        ([], "No head configs given"),
        (["--heads", "{head}", "--jobs", "0"], "--jobs 0 is below 1"),
    ],
)
def test_compare_rejects_invalid_options(tmp_path, arguments, message):
    head = str(CONFIGS / "vgg_fc.yaml")
    arguments = [argument.replace("{head}", head) for argument in arguments]
    with pytest.raises(ComparisonError, match=message.replace("(", r"\(")) as error:
        compare([*arguments, "--output", str(tmp_path / "out")])
    assert not (tmp_path / "out" / "runs").exists(), error.value


def test_wandb_logger_named_for_comparison(tmp_path):
    cli = ComparisonRunCLI(
        SpinalClassifier,
        InMemoryImageDataModule,
        subclass_mode_data=True,
        run=False,
        auto_configure_optimizers=False,
        args=[
            "--config",
            str(CONFIGS / "vgg_spinal.yaml"),
            "--trainer.logger=lightning.pytorch.loggers.WandbLogger",
            "--trainer.logger.offline=true",
        ],
        label="spinal",
        seed=2,
        runs_dir=tmp_path,
        group="my-comparison",
    )
    # WandbLogger passes these to wandb.init when its run starts; nothing has started it here.
    settings = cli.trainer.logger._wandb_init
    assert settings["name"] == "spinal-seed2"
    assert settings["group"] == "my-comparison"
    assert settings["job_type"] == "spinal"
    assert settings["dir"] == str(tmp_path / "spinal" / "seed2")


def test_summary_marks_head_not_run_yet():
    rows = summarize([fake_result("fc", 0, 0.9, 150)], ["spinal", "fc"], baseline="fc")
    table = summary_markdown(rows, baseline="fc")
    assert "| spinal | n/a | 0 of 0 | not run yet | n/a | n/a |" in table
    assert "| fc | FCHead | 1 of 1 | 90.00 | baseline | baseline |" in table


def digits_comparison(output: str, *extra: str) -> list[str]:
    """Arguments of a comparison of the digits heads, which trains in seconds."""
    return [
        "compare",
        "--heads",
        str(CONFIGS / "digits_spinal.yaml"),
        str(CONFIGS / "digits_fc.yaml"),
        "--labels",
        "spinal",
        "fc",
        "--output",
        output,
        "--trainer.enable_progress_bar=false",
        *extra,
    ]


def test_parallel_jobs_keep_the_planned_order(tmp_path):
    result = run_cli(
        digits_comparison("parallel", "--seeds", "0", "1", "--jobs", "2", "--trainer.max_epochs=1"), cwd=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" done] ") == 4

    # Runs finish in any order, yet the table lists them seed by seed, head by head.
    with open(tmp_path / "parallel" / "runs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["label"], row["seed"]) for row in rows] == [("spinal", "0"), ("fc", "0"), ("spinal", "1"), ("fc", "1")]
    assert all(row["status"] == "ok" and 0.5 < float(row["test_acc"]) <= 1 for row in rows)


def test_parallel_jobs_share_the_cores(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert child_environment(2)["OMP_NUM_THREADS"] == str(max(1, (os.cpu_count() or 1) // 2))
    assert "OMP_NUM_THREADS" not in child_environment(1)

    # A thread count the user chose wins.
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert child_environment(2)["OMP_NUM_THREADS"] == "3"


def running_runs(output: Path) -> list[int]:
    """Process ids of the compare runs still alive whose command line names ``output``."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if "spinal_lightning.compare.single_run" in command and str(output) in command:
            pids.append(int(entry.name))
    return pids


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="lists processes through /proc")
def test_sigterm_stops_the_parallel_runs(tmp_path):
    output = tmp_path / "stopped"
    command = [sys.executable, "-m", "spinal_lightning", *digits_comparison(str(output), "--jobs", "2")]
    command += ["--seeds", "0", "1", "--trainer.max_epochs=1000"]
    compare_process = subprocess.Popen(command, cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, text=True)

    # Wait until both runs train, then stop the comparison as a cluster scheduler would.
    deadline = time.monotonic() + 120
    while len(running_runs(output)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(running_runs(output)) == 2
    compare_process.send_signal(signal.SIGTERM)
    compare_process.wait(timeout=60)

    assert compare_process.returncode == 128 + signal.SIGTERM
    assert running_runs(output) == []

    # The queued runs of seed 1 never started.
    assert not (output / "runs" / "spinal" / "seed1").exists()
    assert "seed 1: running" not in compare_process.stdout.read()
