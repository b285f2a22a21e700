"""precision: auto, the compile option and the fast data path through the command line."""

import pytest
import torch
from conftest import CONFIGS, FAST_TRAINER_ARGS, read_csv_metrics, run_cli

from spinal_lightning import precision as precision_module
from spinal_lightning.precision import SpinalTrainer, cpu_has_bf16, resolve_precision


@pytest.mark.parametrize("value", ["32-true", "bf16-mixed", "16-mixed", 64, None])
def test_explicit_precision_is_kept(value):
    assert resolve_precision(value, "cpu") == value


@pytest.mark.parametrize(("has_bf16", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_on_cpu_follows_bf16_support(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(precision_module, "cpu_has_bf16", lambda: has_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)

    assert resolve_precision("auto", "cpu") == expected


@pytest.mark.parametrize(("has_bf16", "expected"), [(True, "bf16-mixed"), (False, "32-true")])
def test_auto_on_gpu_follows_bf16_support(monkeypatch, has_bf16, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: has_bf16)

    assert resolve_precision("auto", "gpu") == expected
    assert resolve_precision("auto", "auto") == expected


def test_auto_on_other_accelerators_is_float32():
    assert resolve_precision("auto", "mps") == "32-true"


def test_trainer_resolves_auto_on_this_machine():
    trainer = SpinalTrainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_checkpointing=False)

    assert trainer.precision == ("bf16-mixed" if cpu_has_bf16() else "32-true")


def test_cli_fit_with_auto_precision_and_device_data(tmp_path, fashion_mnist_dir):
    result = run_cli(
        [
            "fit",
            "--config", str(CONFIGS / "vgg_spinal.yaml"),
            *FAST_TRAINER_ARGS,
            "--trainer.precision=auto",
            "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
            "--trainer.logger.name=vgg_spinal",
            "--trainer.limit_train_batches=2",
            "--trainer.limit_val_batches=1",
            f"--data.init_args.data_dir={fashion_mnist_dir}",
            "--data.init_args.batch_size=20",
            "--data.init_args.data_on_device=true",
        ],
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_csv_metrics(next(tmp_path.glob("runs/vgg_spinal/version_*/metrics.csv")))
    assert 0.0 <= metrics["val/acc"] <= 1.0
    assert metrics["train/loss_epoch"] > 0
    if cpu_has_bf16():
        assert "bfloat16 Automatic Mixed Precision" in result.stdout + result.stderr


def test_cli_rejects_unknown_pipeline(tmp_path, fashion_mnist_dir):
    result = run_cli(
        ["fit", "--config", str(CONFIGS / "vgg_spinal.yaml"), *FAST_TRAINER_ARGS, "--data.init_args.pipeline=opencv"],
        cwd=tmp_path,
    )

    assert result.returncode == 1
    assert "pipeline must be one of ('tensor', 'pil'), got 'opencv'" in result.stderr


@pytest.mark.slow
def test_cli_fit_with_compile_and_pil_pipeline(tmp_path, fashion_mnist_dir):
    # torch.compile builds C++ kernels on a CPU, which takes minutes on two cores.
    result = run_cli(
        [
            "fit",
            "--config", str(CONFIGS / "vgg_fc.yaml"),
            *FAST_TRAINER_ARGS,
            "--trainer.limit_train_batches=3",
            "--trainer.limit_val_batches=2",
            f"--data.init_args.data_dir={fashion_mnist_dir}",
            "--data.init_args.pipeline=pil",
            "--model.compile=true",
        ],
        cwd=tmp_path,
        timeout=1800,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = torch.load(next(tmp_path.glob("runs/**/last.ckpt")), weights_only=False)
    assert "backbone.features.0.weight" in checkpoint["state_dict"]
    assert not any("_orig_mod" in key for key in checkpoint["state_dict"])
